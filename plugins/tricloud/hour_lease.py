"""One run per hour at a time: the Airflow side of the hour lease (:mod:`include.lease`).

- :class:`ClaimHourSensor` (``claim_hour``, the run's first task and a *setup*): takes the lease of
  the run's hour. While another live run holds it, it waits in ``reschedule`` mode, holding no worker
  slot between pokes, and logs which run holds the hour; its XCom is the claim (hour, generation).
- :class:`ReleaseHourOperator` (``release_hour``, the matching *teardown*): marks the run's
  generation released, whatever happened to the tasks in between.
- :func:`fence` (``pre_execute`` hook of every task that writes): fails the task, without retry,
  before it writes when this run's generation is no longer the lease or a later try of the task
  exists; otherwise records this attempt and renews the lease.
- :func:`keep_alive` (``pre_execute`` of ``start_cluster``/``stop_cluster``, which do not write):
  renews the lease if this run holds it and never fails, so the TTL counts from the latest task.

A crashed holder does not block the hour for long: its lease is free as soon as its DAG run is in a
terminal state (asked through the Task SDK), or when it was not renewed for ``ttl``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.lease import HourLease

log = logging.getLogger(__name__)

CLAIM_TASK_ID = "claim_hour"
#: A lease not renewed for this long is free. Above the longest stretch between two task starts of a
#: live run: one try (execution_timeout 30 min) + a retry delay (<= 10 min) + queueing (docs/design.md).
LEASE_TTL = timedelta(hours=1)


def _holder_state(context: Context):
    """``holder_state`` for the lease: a DAG run's state through the Task SDK (raises for an unknown run)."""
    ti = context["ti"]

    def holder_state(dag_id: str, run_id: str) -> str:
        state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        return getattr(state, "value", state)  # a DagRunState enum: str() would give "DagRunState.FAILED"

    return holder_state


def _holder(context: Context) -> str:
    from include.lease import default_holder

    ti = context["ti"]
    return f"{default_holder()} {ti.dag_id}.{ti.task_id} try {ti.try_number}"


def _lease(lake_root: str, pipeline: str, hour: str, ttl: timedelta = LEASE_TTL) -> HourLease:
    """The hour's lease; on an object-store lake through the lake connection's client (the provider hook's:
    boto3 S3 for ``s3://``, google-cloud-storage for ``gs://``)."""
    from include.lease import HourLease
    from tricloud.lake import lake_client

    # As the lake itself (tricloud.lake): without the connection the hook would fall back to the ambient
    # credential chain, and the lease could live in another account or endpoint than the lake.
    return HourLease(lake_root, pipeline, hour, ttl=ttl, client=lake_client(lake_root))


class ClaimHourSensor(BaseSensorOperator):
    """
    Wait until the run's hour is free, then hold it for this run (the lease in the lake).

    Returns (XCom) ``{"hour", "pipeline", "lake_root", "generation", "run_id", "lease"}``: the writers'
    fencing token. On timeout it fails naming the run that still holds the hour.

    :param hour: start of the hour, ISO 8601. (templated)
    :param lake_root: the lake every worker shares. (templated)
    :param pipeline: name of the pipeline whose hour is claimed; default the DAG id.
    :param ttl: a lease not renewed for this long is free even if its holder's state is unknown.
    :param timeout: seconds to wait for the hour before failing; default twice ``ttl``.
    """

    template_fields: Sequence[str] = ("hour", "lake_root")
    ui_color = "#e8dcff"

    def __init__(
        self,
        *,
        hour: str,
        lake_root: str,
        pipeline: str | None = None,
        ttl: timedelta = LEASE_TTL,
        mode: str = "reschedule",
        poke_interval: float = 10,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        # Twice the TTL by default: a stale lease is always seen free before the waiter gives up.
        timeout = 2 * ttl.total_seconds() if timeout is None else timeout
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.hour = hour
        self.lake_root = lake_root
        self.pipeline = pipeline
        self.ttl = ttl
        self._held_by: str | None = None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """Try once to take the hour's lease: the claim as XCom when taken, False while another run holds it."""
        pipeline = self.pipeline or self.dag_id
        lease = _lease(self.lake_root, pipeline, self.hour, self.ttl)
        claim = lease.try_acquire(self.dag_id, context["run_id"], _holder_state(context), holder=_holder(context))
        if not claim.acquired:
            self._held_by = claim.reason
            self.log.info("Hour %s is %s: waiting (no worker slot held)", self.hour, claim.reason)
            return False
        self.log.info(
            "Claimed hour %s for run %s: generation %d (%s)",
            self.hour,
            context["run_id"],
            claim.record.generation,
            claim.reason,
        )
        return PokeReturnValue(
            is_done=True,
            xcom_value={
                "hour": self.hour,
                "pipeline": pipeline,
                "lake_root": self.lake_root,
                "generation": claim.record.generation,
                "run_id": claim.record.run_id,
                "lease": str(lease.path),
            },
        )

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            raise AirflowSensorTimeout(
                f"{err} Hour {self.hour} is still {self._held_by}: wait for that run, or mark it failed "
                "to free the hour, then clear claim_hour with its downstream tasks (or the whole run)"
            ) from err


def _claim(context: Context) -> dict:
    claim = context["ti"].xcom_pull(task_ids=CLAIM_TASK_ID)
    if not claim:
        raise RuntimeError(
            f"task {CLAIM_TASK_ID!r} of this run returned no claim: it must run (and succeed) before any writer"
        )
    return claim


def fence(context: Context) -> None:
    """``pre_execute`` hook of a writing task: fail before writing unless this run still holds its hour.

    Records this task attempt (task id, try number) and renews the lease when it holds (a live run's
    lease is never older than its latest task). When the lease is lost, or a later try of this task
    exists, raises ``AirflowFailException`` (no retry: a retry would lose again) from
    :class:`include.lease.LeaseLostError`, whose message names the holder and the fix.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.lease import LeaseLostError

    claim = _claim(context)
    ti = context["ti"]
    lease = _lease(claim["lake_root"], claim["pipeline"], claim["hour"])
    adopts = _resumed_try(context)
    if adopts is not None:
        log.info("A job of try %d of this task is on record: this try may re-attach to it (adopted)", adopts)
    try:
        record = lease.renew(claim["generation"], task_id=ti.task_id, try_number=ti.try_number, adopts=adopts)
    except LeaseLostError as err:
        raise AirflowFailException(str(err)) from err
    log.info(
        "Hour %s still held by this run (generation %d, try %d): writing",
        claim["hour"],
        record.generation,
        ti.try_number,
    )


def _resumed_try(context: Context) -> int | None:
    """The earlier try whose job this retry may re-attach to (its handle in ``task_state_store``), else None.

    Written by :class:`tricloud.operators.SparkJobOperator` (``ResumableJobMixin``); other tasks have none.
    """
    from tricloud.operators.spark import JOB_HANDLE_KEY

    store = context.get("task_state_store")
    if store is None:
        return None
    try:
        handle = store.get(JOB_HANDLE_KEY)
    except Exception:  # no store behind it (e.g. a test context): nothing to adopt
        log.debug("task_state_store not readable", exc_info=True)
        return None
    try_number = ((handle or {}).get("details") or {}).get("try_number") if isinstance(handle, dict) else None
    return int(try_number) if try_number is not None and int(try_number) < context["ti"].try_number else None


def keep_alive(context: Context) -> None:
    """``pre_execute`` hook of a task that does not write (``start_cluster``, ``stop_cluster``).

    Renews the lease if this run holds it, so a slow cluster start (retries, queueing) between
    ``claim_hour`` and the first writer does not outlast the TTL. A lost lease or a failing store never
    fails the task: a lost lease is the writers' business (:func:`fence`), and stopping a cluster must
    happen regardless. A store that fails the renewal (S3 / GCS / Azure client error, a file-system or
    connection error, see :func:`include.lease_store.is_store_error`) is logged and left: its SDK client
    has already retried what its retry policy retries, and the next writer's :func:`fence` renews again
    (or fails, fenced). Any other error (a bug, e.g. a claim without its generation, pyarrow's
    ``ArrowInvalid``) is raised before a setup task (``start_cluster``: let it show), but only logged, with
    its traceback, before a *teardown* task (``stop_cluster``, ``task.is_teardown``): the renewal is a
    courtesy, and a cloud cluster left running costs money, so the cluster is stopped regardless.
    """
    from include.lease import LeaseLostError
    from include.lease_store import is_store_error

    claim = context["ti"].xcom_pull(task_ids=CLAIM_TASK_ID)
    if not claim:
        log.warning("No claim from %r: lease not renewed", CLAIM_TASK_ID)
        return
    try:
        _lease(claim["lake_root"], claim["pipeline"], claim["hour"]).renew(claim["generation"])
    except LeaseLostError as err:
        log.warning("Lease not renewed: %s", err)
    except Exception as err:
        if not is_store_error(err):
            if getattr(context.get("task"), "is_teardown", False):
                log.exception(
                    "Lease not renewed, an error that is not the store's (a bug: please report it); "
                    "%s goes on so the cluster is stopped",
                    context["ti"].task_id,
                )
                return
            raise  # a bug, not the store: let it show
        log.warning("Lease not renewed, the lake's store failed (the task goes on): %s: %s", type(err).__name__, err)


class ReleaseHourOperator(BaseOperator):
    """
    Free the run's hour (teardown of ``claim_hour``): mark this run's generation of the lease released.

    Does nothing when this run no longer holds the hour (another run took it over). Returns whether it
    released.
    """

    ui_color = "#e8dcff"

    def execute(self, context: Context) -> bool:
        claim = _claim(context)
        released = _lease(claim["lake_root"], claim["pipeline"], claim["hour"]).release(claim["generation"])
        if released:
            self.log.info("Released hour %s (generation %d)", claim["hour"], claim["generation"])
        else:
            self.log.warning("Hour %s was no longer held by this run: nothing to release", claim["hour"])
        return released


#: Spark job arguments naming the lease the driver checks right before it publishes (include/jobs/common.py).
#: A missing claim renders as "" (not a Jinja error), so ``fence`` fails first with its clear message.
LEASE_ARGS = [
    "--lease-pipeline",
    "{{ (ti.xcom_pull(task_ids='" + CLAIM_TASK_ID + "') or {}).get('pipeline', '') }}",
    "--lease-generation",
    "{{ (ti.xcom_pull(task_ids='" + CLAIM_TASK_ID + "') or {}).get('generation', '') }}",
    "--lease-attempt",
    "{{ ti.task_id }}:{{ ti.try_number }}",
]
