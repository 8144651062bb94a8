"""The detached runner of one local Spark job: ``python -m tricloud.cluster.local_driver <record.json>``.

Started by :meth:`tricloud.cluster.local.LocalStandaloneBackend.submit` in a session of its own, it
runs spark-submit through the provider's ``SparkSubmitHook`` (unchanged: client deploy mode, the driver
runs here), writes spark-submit's output to the job's driver log (its stdout) and records the outcome in
the job's record (:mod:`tricloud.cluster.local_job_store`). It outlives the Airflow task that started it, so
a retry of that task re-attaches instead of submitting again.

While the job runs it watches the cluster: a worker lost mid-job makes Spark wait for resources
forever, so when the master has had no live worker (or no master answered) for
``lost_cluster_timeout`` seconds, it stops spark-submit (``SparkSubmitHook.on_kill``) and records why.

A ``connect`` record (:mod:`tricloud.cluster.local_connect`) runs the job's ``run(spark, argv)`` here,
in a session of its own on the cluster's Spark Connect server (:func:`run_connect`): same record, same
re-attach and cancel, and SIGTERM interrupts the session's operations on the server.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from include.lake_fs import read_json_or_none
from include.processes import kill_children
from tricloud.cluster.base import JobState
from tricloud.cluster.local_job_store import JobRecord, JobStore, now

log = logging.getLogger("tricloud.local_driver")

_EXIT_CODE = re.compile(r"Error code is: (\d+)")


class Watchdog(threading.Thread):
    """Calls ``on_lost(reason)`` once the cluster had no live worker for ``timeout`` seconds."""

    def __init__(self, cluster_settings: dict, timeout: float, on_lost, poll: float = 2.0) -> None:
        super().__init__(daemon=True, name="lost-cluster-watchdog")
        from tricloud.cluster.local import LocalStandaloneBackend

        self.cluster = LocalStandaloneBackend(**cluster_settings)
        self.timeout = timeout
        self.on_lost = on_lost
        self.poll = poll
        self.done = threading.Event()
        self.reason: str | None = None

    def run(self) -> None:
        lost_since = None
        while not self.done.wait(self.poll):
            try:
                status = self.cluster.status()
            except Exception:  # a flaky status call is not a lost cluster
                log.debug("Cluster status check failed", exc_info=True)
                continue
            if status.alive and status.workers > 0:
                lost_since = None
                continue
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since >= self.timeout:
                what = "its master" if not status.alive else "every worker"
                self.reason = (
                    f"the Spark cluster at {self.cluster.master_url} lost {what} during the job and had none "
                    f"back for {self.timeout:.0f}s (Spark would wait for resources forever)"
                )
                log.error("%s: stopping spark-submit", self.reason)
                self.on_lost()
                return


def run(record_path: Path, started: float | None = None) -> int:
    """Run the job of ``record_path`` to its end; returns 0 when it succeeded.

    :param started: when this process reached ``main`` (epoch seconds), recorded as the ``runner`` timing.
    """
    store = JobStore(record_path.parent)
    key = record_path.name.removesuffix(".json")
    with store.locked(key):  # submit holds it until our pid is recorded
        pass
    current = store.read(key)
    timings = {**(current.timings if current else {}), "runner": started or time.time()}
    record: JobRecord = store.update(key, state=JobState.RUNNING.value, submitted_at=now(), timings=timings)
    if record.mode == "connect":
        from tricloud.cluster.local_connect_runner import run_connect

        return run_connect(store, record)
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk.exceptions import AirflowException

    job = record.spark_job
    hook = SparkSubmitHook(
        conn_id=record.conn_id,
        conf={str(k): str(v) for k, v in job.conf.items()},
        name=job.name,
        application_args=job.submitted_args,
        executor_memory=job.executor_memory,
        driver_memory=job.driver_memory,
    )

    def on_term(signum, frame):  # e.g. `kill <runner>`; cancel() kills the whole group instead
        hook.on_kill()
        store.update(key, state=JobState.CANCELLED.value, error="cancelled (SIGTERM)", finished_at=now())
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    watchdog = None
    if record.cluster and record.lost_cluster_timeout > 0:
        watchdog = Watchdog(record.cluster, record.lost_cluster_timeout, hook.on_kill)
        watchdog.start()
    log.info("Job %s: spark-submit of %s (launch %d)", key, job.application, record.launches)
    try:
        hook.submit(job.application)
    except AirflowException as err:
        match = _EXIT_CODE.search(str(err))
        reason = f"{watchdog.reason}; spark-submit was stopped. {err}" if watchdog and watchdog.reason else str(err)
        store.update(
            key,
            state=JobState.FAILED.value,
            exit_code=int(match.group(1)) if match else None,
            error=reason,
            finished_at=now(),
        )
        return 1
    except Exception as err:  # the record must say why, whatever broke
        store.update(key, state=JobState.FAILED.value, error=f"{type(err).__name__}: {err}", finished_at=now())
        raise
    finally:
        if watchdog:
            watchdog.done.set()
        kill_children()  # a Python driver that outlived spark-submit must not keep running
    return record_success(store, key, job.result_uri)


def record_success(store: JobStore, key: str, result_uri: str, timings: dict[str, float] | None = None) -> int:
    """Record job ``key`` as SUCCEEDED with the application id from its metrics at ``result_uri``; returns 0.

    Unreadable metrics are logged, not fatal: the job did succeed, and recording it as failed would turn
    it into a "runner died" failure (both runners, spark-submit and Spark Connect, end here).

    :param timings: the runner's phase timings (epoch seconds) to record with the outcome.
    """
    try:
        result = read_json_or_none(result_uri) or {}
    except Exception as err:
        log.warning("Job %s succeeded but its metrics at %s are unreadable: %s", key, result_uri, err)
        result = {}
    extra = {"timings": {**timings, "recorded": time.time()}} if timings else {}
    store.update(
        key,
        state=JobState.SUCCEEDED.value,
        exit_code=0,
        application_id=result.get("application_id"),
        finished_at=now(),
        **extra,
    )
    log.info("Job %s succeeded", key)
    return 0


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tricloud.cluster.local_driver <jobs dir>/<key>.json", file=sys.stderr)
        return 2
    record_path = Path(args[0])
    spark_submit = connect_mode(record_path) is not True
    if spark_submit:
        # Airflow configures logging on import: import it first, then send every record to stdout (the
        # driver log), the provider hook's spark-submit output included. A Connect job needs no Airflow
        # at all: not importing it saves 2.4-2.9 s per job (docs/design.md, "Spark Connect: where the time goes").
        import airflow.providers.apache.spark.hooks.spark_submit  # noqa: F401

    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="[%(asctime)s] %(levelname)s - %(message)s", force=True
    )
    if spark_submit:
        _plain_structlog()
    return run(record_path, started)


def connect_mode(record_path: Path) -> bool | None:
    """Whether the record at ``record_path`` is a Connect job (None: unreadable, ``run`` reports it)."""
    try:
        return JobStore(record_path.parent).read(record_path.name.removesuffix(".json")).mode == "connect"
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _plain_structlog() -> None:
    """The hook logs through structlog: plain lines, so the task log that copies them stays readable."""
    import structlog

    def render(logger, method_name, event_dict) -> str:
        return f"[{datetime.now(UTC):%Y-%m-%d %H:%M:%S}] {method_name.upper()} - {event_dict.get('event')}"

    structlog.configure(
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), render],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        # INFO whatever the deployment's log level: spark-submit's output is logged at INFO.
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


if __name__ == "__main__":
    sys.exit(main())
