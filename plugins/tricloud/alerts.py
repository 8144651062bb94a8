"""Who is told when an hour fails or is late: the providers' notifiers, routed by connections.

- **Failure** of a task (after its last try): :class:`FailureAlert` (the DAGs' ``on_failure_callback``),
  run by the task's worker with the task's context.
- **Late hour**: :func:`hour_deadline`, the SDK's ``DeadlineAlert`` per DAG run, due
  ``TRICLOUD_HOUR_DEADLINE_MINUTES`` (default 50) after the hour's interval ends; the scheduler queues
  :func:`notify_deadline_missed` on the executor (``SyncCallback``) when a run is not done by then.
  Airflow makes that deadline when it *creates* a run, from the hour, so a backfill of last week or a
  catch-up run queued after its deadline would be "late" at once: :func:`late_verdict` lets the
  callback send only for runs that were queued in time (not backfills) and logs why it sends nothing.
  Airflow drops a deadline only when its run succeeds: a run that already *ended failed* gets no "late"
  after its "failed" (one alert per problem); one still queued or running at its deadline does.

Both send the same message (:class:`Alert`: the DAG, the hour (UTC), the task, the error's first line and
the log URL) through every *configured* channel, e-mail and webhook, with every secret masked:
:func:`tricloud.alert_channels.send`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback
from airflow.sdk.bases.notifier import BaseNotifier

from tricloud.alert_channels import send

log = logging.getLogger(__name__)

HOUR_DEADLINE_ENV = "TRICLOUD_HOUR_DEADLINE_MINUTES"
DEFAULT_HOUR_DEADLINE_MINUTES = 50.0
#: The value of the setting that turns the deadline alert off.
DEADLINE_OFF = "off"
#: One hour, the length of an hourly run's interval.
HOUR = timedelta(hours=1)


def hour_deadline_minutes() -> float | None:
    """Minutes after an hour's interval ends by which its run must be done (``TRICLOUD_HOUR_DEADLINE_MINUTES``).

    :returns: the minutes (default 50), or None when the setting is ``off`` (no deadline alert).
    :raises ValueError: neither ``off`` nor a number > 0 — naming the setting.
    """
    raw = os.environ.get(HOUR_DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_HOUR_DEADLINE_MINUTES
    if raw.lower() == DEADLINE_OFF:
        return None
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0 or minutes == float("inf"):
        raise ValueError(
            f"{HOUR_DEADLINE_ENV}={raw!r} is not a positive number of minutes: set it in .env "
            f"(e.g. {DEFAULT_HOUR_DEADLINE_MINUTES:.0f}), to {DEADLINE_OFF!r} for no deadline, "
            "or unset it for the default"
        )
    return minutes


def hour_deadline() -> DeadlineAlert | None:
    """The DAG's deadline: the run is done ``TRICLOUD_HOUR_DEADLINE_MINUTES`` after its interval ends.

    The SDK has no data-interval reference; ``DAGRUN_LOGICAL_DATE`` is the interval's *start* for a
    ``CronDataIntervalTimetable`` run (scheduled or backfilled), so the interval is one hour plus the
    setting. A manual run's logical date is its hour's *end* (``tricloud.hours.resolve_hour``): it gets
    one hour more. None (no deadline) when the setting is ``off``.
    """
    minutes = hour_deadline_minutes()
    if minutes is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=HOUR + timedelta(minutes=minutes),
        callback=SyncCallback(notify_deadline_missed),
        name="hour_deadline",
    )


@dataclass(frozen=True)
class Alert:
    """What an alert says: one subject line and a body of ``name: value`` lines.

    ``label`` names what ``hour`` holds: ``"hour"`` (an hourly DAG: the hour's ISO start, UTC) or ``"run"``
    (a manual DAG that processes no one hour, e.g. restore_lake, check_connections: the run id).
    """

    kind: str  # "failed" or "late"
    dag_id: str
    hour: str  # ISO start of the hour, UTC (or the run id, see label)
    task: str
    error: str  # the error's first line
    url: str  # the task's log, or the run's page
    label: str = "hour"

    @property
    def subject(self) -> str:
        return f"[tricloud] {self.dag_id} {self.label} {self.hour} {self.kind}: {self.task}"

    @property
    def text(self) -> str:
        return "\n".join(
            [
                self.subject,
                f"DAG: {self.dag_id}",
                f"{self.label.capitalize()}: {self.hour}",
                f"Task: {self.task}",
                f"Error: {self.error}",
                f"Log: {self.url}",
            ]
        )


def first_line(error: BaseException | str | None) -> str:
    """``Type: first line of the message`` of an exception (or the first line of a text)."""
    if error is None:
        return "(no error recorded)"
    if isinstance(error, BaseException):
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _hour(data_interval_start, data_interval_end, dag_run, conf: dict | None) -> str:
    from tricloud.hours import resolve_hour

    try:
        return resolve_hour(data_interval_start, data_interval_end, dag_run, (conf or {}).get("hour"))[0].isoformat()
    except Exception as err:  # an alert must go out even when the hour cannot be worked out
        return f"(unknown: {err})"


def failure_alert(context: dict[str, Any], hourly: bool = True) -> Alert:
    """The alert of a failed task from its context (``ti``, ``dag_run``, ``exception``, interval, params).

    :param hourly: the DAG processes one hour per run (the alert names the hour); False for a manual DAG
        that does not (the alert names the run id instead of an hour it never had).
    """
    ti = context["ti"]
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    if hourly:
        label = "hour"
        hour = _hour(context.get("data_interval_start"), context.get("data_interval_end"), dag_run, dict(params))
    else:
        label, hour = "run", str(getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?"))
    return Alert(
        kind="failed",
        dag_id=ti.dag_id,
        hour=hour,
        task=f"{ti.task_id} (try {ti.try_number})",
        error=first_line(context.get("exception")),
        url=ti.log_url,
        label=label,
    )


def deadline_alert(context: dict[str, Any]) -> Alert:
    """The alert of a missed deadline from the scheduler's context (``dag_run`` as JSON, ``deadline``)."""
    from types import SimpleNamespace
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}

    def when(key: str) -> datetime | None:
        value = run.get(key)
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    dag_run = SimpleNamespace(
        logical_date=when("logical_date"), run_type=run.get("run_type"), run_after=when("run_after")
    )
    hour = _hour(when("data_interval_start"), when("data_interval_end"), dag_run, run.get("conf"))
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    dag_id = str(run.get("dag_id", "?"))
    return Alert(
        kind="late",
        dag_id=dag_id,
        hour=hour,
        task=f"run {run.get('dag_run_id', '?')} (state {run.get('state', '?')})",
        error=f"not finished by its deadline {deadline.get('deadline_time', '?')} ({HOUR_DEADLINE_ENV})",
        url=f"{base}/dags/{dag_id}/runs/{quote(str(run.get('dag_run_id', '')))}",
    )


class FailureAlert(BaseNotifier):
    """``on_failure_callback`` of the tasks: sends :func:`failure_alert` through :func:`send`.

    Built at parse time with no I/O; everything happens when a task has failed.

    :param hourly: False for a manual DAG that processes no one hour: the alert names the run, not an hour.
    """

    def __init__(self, hourly: bool = True) -> None:
        super().__init__()
        self.hourly = hourly

    def notify(self, context) -> None:
        send(failure_alert(context, hourly=self.hourly))


@dataclass(frozen=True)
class LateVerdict:
    """Whether a run that missed its deadline is *late* (alert) or was started late on purpose (no alert)."""

    alert: bool
    reason: str


#: ``DagRunType.BACKFILL_JOB``'s value, as the scheduler's context carries it (``dag_run.run_type``).
BACKFILL = "backfill"
SCHEDULED = "scheduled"  # DagRunType.SCHEDULED
#: ``DagRunState.FAILED``'s value (``dag_run.state`` in the context).
FAILED = "failed"


def _utc(value: datetime | str | None) -> datetime | None:
    """A datetime from the context (ISO text in the executor's JSON, or a datetime), in UTC; None if absent."""
    if value is None or value == "":
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def late_verdict(
    run_type: str | None,
    queued_at: datetime | str | None,
    deadline_time: datetime | str | None,
    state: str | None = None,
) -> LateVerdict:
    """Decide whether a run whose deadline passed deserves a "late" alert.

    Airflow 3.3 creates a run's deadline when it creates the run (``SerializedDAG.create_dagrun``), from
    the logical date plus the interval, and the scheduler queues the callback for every deadline that
    has passed (``Deadline.handle_miss``) -- also for runs that could never have met it. Not late:

    - a **backfill** run (``run_type`` ``"backfill"``, ``DagRunType.BACKFILL_JOB``): it re-processes an
      old hour on purpose;
    - a run that **already ended failed** (``state`` ``"failed"``) when its deadline passed: Airflow 3.3
      drops a run's deadline only when the run succeeds, so a failed hour would get a second alert for
      one problem; its failed task's alert went out when it failed (:class:`FailureAlert`);
    - a run other than a scheduled one **queued at or after its deadline** (a manual re-run of an old
      hour): it was started late on purpose, not held up.

    Every other run is late: a manual or asset-triggered run queued before its deadline and still queued
    or running at it (a task may already have failed and alerted: the hour is still not done), and every
    **scheduled** run, even one created after its deadline (with ``catchup=False`` that is the one run the
    scheduler makes after an outage: the hour really was late, and one alert says so). When
    ``queued_at`` or the deadline is unknown the alert is sent: a missing field must not hide a late hour.

    :param run_type: the run's type (``DagRunType`` value or enum), e.g. ``"scheduled"``, ``"backfill"``.
    :param queued_at: when the run was queued (timezone-aware, or naive = UTC; ISO text accepted).
    :param deadline_time: the deadline the run missed (same forms).
    :param state: the run's state when the scheduler found the deadline missed (``DagRunState`` value or
        enum, e.g. ``"running"``, ``"failed"``); None = unknown (judged as not ended).
    :returns: the verdict and a sentence for the log.
    """
    kind = str(getattr(run_type, "value", run_type) or "unknown")
    if kind == BACKFILL:
        return LateVerdict(False, "a backfill run re-processes an old hour on purpose: its deadline does not apply")
    if str(getattr(state, "value", state) or "") == FAILED:
        return LateVerdict(
            False,
            f"the {kind} run had already ended failed when its deadline passed: its failed task's alert went "
            "out then, one alert per problem",
        )
    queued, deadline = _utc(queued_at), _utc(deadline_time)
    if kind != SCHEDULED and queued is not None and deadline is not None and queued >= deadline:
        return LateVerdict(
            False,
            f"the {kind} run was queued at {queued.isoformat()}, after its deadline {deadline.isoformat()}: "
            "started late on purpose (a re-run of an old hour), not late",
        )
    return LateVerdict(
        True,
        f"the {kind} run was queued at {queued.isoformat() if queued else '(unknown)'} "
        f"and is not done by its deadline {deadline.isoformat() if deadline else '(unknown)'}",
    )


def notify_deadline_missed(context: dict[str, Any] | None = None, **_: Any) -> None:
    """The deadline callback (``SyncCallback``, run by the executor): sends :func:`deadline_alert`, unless
    :func:`late_verdict` finds the run was not late (a backfill, a run already ended failed, or one
    queued after its deadline).

    :param context: what ``Deadline.handle_miss`` passes: ``dag_run`` (the REST API's ``DAGRunResponse`` as
        JSON: ``run_type``, ``queued_at``, …) and ``deadline`` (``id``, ``deadline_time``).
    """
    context = context or {}
    run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    verdict = late_verdict(
        run.get("run_type"), run.get("queued_at"), deadline.get("deadline_time"), state=run.get("state")
    )
    where = f"{run.get('dag_id', '?')} run {run.get('dag_run_id', '?')}"
    if not verdict.alert:
        log.info("No late alert for %s: %s", where, verdict.reason)
        return
    log.info("Late alert for %s: %s", where, verdict.reason)
    send(deadline_alert(context))


#: The callbacks to put in ``default_args``: one notifier instance, shared by every task.
ON_FAILURE = [FailureAlert()]
#: The same for the manual DAGs that process no one hour (restore_lake, check_connections): names the run.
ON_FAILURE_BY_RUN = [FailureAlert(hourly=False)]
