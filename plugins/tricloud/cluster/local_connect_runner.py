"""The ``connect`` half of the detached job runner (:mod:`tricloud.cluster.local_driver`).

The runner process calls the job module's ``run(spark, argv)`` in-process, against a new session of the
cluster's Spark Connect server (``SparkSession.builder.remote(url).create()``: its own temp views,
cached data and settings, released at the end). The job's code needs no shipping: the jobs use no Python
UDF, so nothing of it runs in the server's Python (a job that adds one must ship its modules with
``spark.addArtifacts(..., pyfile=True)``).

- SIGTERM (``cancel``) interrupts every operation of the session on the server (``interruptAll``), records
  CANCELLED and exits; the server itself keeps running for the other jobs.
- A server that died mid-job fails the job with a message that says so; the retry's ``submit`` starts it
  again (:meth:`tricloud.cluster.local_jobs.LocalJobsMixin.submit`).
- A lost hour lease (:class:`include.lease.LeaseLostError`) is recorded with exit code
  :data:`include.lease.LEASE_LOST_EXIT`; a missing or unusable input or a bad setting (any
  ``include.errors.DeterministicError``: ``NoInputError``, ``InputFormatError``, ``ConfigError`` …) with
  :data:`include.jobs.DATA_ERROR_EXIT`, as the spark-submit path's ``common.run`` exits, so the
  operator raises the same ``SparkJobDataError`` (not retried) either way.
- The runner imports no Airflow, and records when each phase ended (``timings``: ``imported``,
  ``session``, ``ran``, ``stopped``, ``recorded``), for :mod:`bench.connect`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import threading
import time
import traceback
import urllib.parse

from tricloud.cluster.base import JobState
from tricloud.cluster.local_connect import listening
from tricloud.cluster.local_driver import record_success
from tricloud.cluster.local_job_store import JobRecord, JobStore, now

log = logging.getLogger("tricloud.local_driver")

#: Seconds the server may be unreachable before a job gives up on it. The Connect client itself retries
#: an unavailable server for minutes (its default retry policy), which would hold a task that long.
SERVER_LOST_TIMEOUT = 10.0


def server_down(url: str) -> bool:
    """Nothing listens at the ``sc://host:port`` of ``url`` any more."""
    parts = urllib.parse.urlsplit(url)
    return not listening(parts.hostname or "127.0.0.1", parts.port or 15002)


def failure(err: BaseException, url: str) -> tuple[str, int | None]:
    """(message, exit code) recorded for a job that raised ``err``."""
    from include.errors import DeterministicError
    from include.jobs import DATA_ERROR_EXIT
    from include.lease import LEASE_LOST_EXIT, LeaseLostError

    if isinstance(err, LeaseLostError):
        return f"LeaseLostError: {err}", LEASE_LOST_EXIT
    if isinstance(err, DeterministicError):
        return f"{type(err).__name__}: {err}", DATA_ERROR_EXIT
    if server_down(url):
        return (
            f"the Spark Connect server at {url} died during the job ({type(err).__name__}: "
            f"{str(err)[:500]}); a retry of the task starts it again (or start_cluster does)"
        ), None
    return f"{type(err).__name__}: {err}", None


def run_connect(store: JobStore, record: JobRecord) -> int:
    """Run the record's job through the Connect server to its end; returns 0 when it succeeded."""
    from pyspark.sql import SparkSession

    from include.jobs import common

    key, url, job = record.key, str(record.connect_url), record.spark_job
    module = importlib.import_module(str(record.entry_module))
    timings = {**record.timings, "imported": time.time()}
    log.info("Job %s: %s.run in a Spark Connect session at %s (launch %d)", key, module.__name__, url, record.launches)
    outcome: dict = {}
    session: list = []

    def work() -> None:
        try:
            spark = SparkSession.builder.remote(url).create()
            session.append(spark)
            common.configure(spark, job.conf)
            timings["session"] = time.time()
            outcome["metrics"] = module.run(spark, job.submitted_args)
            timings["ran"] = time.time()
        except BaseException as err:  # reported by the main thread
            outcome["error"] = err
            outcome["traceback"] = traceback.format_exc()

    def interrupt() -> None:
        for spark in session:
            with contextlib.suppress(Exception):
                spark.interruptAll()

    def on_term(signum, frame):
        interrupt()
        store.update(key, state=JobState.CANCELLED.value, error="cancelled (SIGTERM)", finished_at=now())
        log.info("Job %s cancelled: its operations on the server were interrupted", key)
        os._exit(128 + signum)  # the worker thread may still wait on the server

    signal.signal(signal.SIGTERM, on_term)
    watchdog = None
    if record.cluster and record.lost_cluster_timeout > 0:
        from tricloud.cluster.local_driver import Watchdog

        watchdog = Watchdog(record.cluster, record.lost_cluster_timeout, interrupt)
        watchdog.start()
    thread = threading.Thread(target=work, name="connect-job", daemon=True)
    thread.start()
    down_since = None
    while thread.is_alive():
        thread.join(1.0)  # wakes for signals
        if not thread.is_alive():
            break
        down_since = (down_since or time.monotonic()) if server_down(url) else None
        if down_since and time.monotonic() - down_since >= SERVER_LOST_TIMEOUT:
            message = (
                f"the Spark Connect server at {url} died during the job (unreachable for {SERVER_LOST_TIMEOUT:.0f}s); "
                "a retry of the task starts it again (or start_cluster does)"
            )
            store.update(key, state=JobState.FAILED.value, error=message, finished_at=now())
            log.error("Job %s failed: %s", key, message)
            os._exit(1)  # the worker thread is stuck in the client's retries
    if watchdog:
        watchdog.done.set()
    for spark in session:  # release the session on the server (temp views, cached data)
        with contextlib.suppress(Exception):
            spark.stop()
    timings["stopped"] = time.time()
    if "error" in outcome:
        print(outcome["traceback"], flush=True)
        message, exit_code = failure(outcome["error"], url)
        if watchdog and watchdog.reason:
            message = f"{watchdog.reason}; its operations were interrupted. {message}"
        store.update(
            key, state=JobState.FAILED.value, exit_code=exit_code, error=message, finished_at=now(), timings=timings
        )
        log.error("Job %s failed: %s", key, message)
        return 1
    return record_success(store, key, job.result_uri, timings)
