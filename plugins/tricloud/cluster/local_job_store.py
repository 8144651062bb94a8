"""The local jobs' records on disk: one JSON record per job key, shared by the backend, the runner and the driver.

``<state dir>/spark/jobs/<key>.json`` holds a job's runner (pid and start time), state, exit code, error and
driver log file (:class:`JobRecord`). Writers of a record (``submit``, the runner, ``cancel``) hold
``<key>.lock`` (``flock``) while they read-modify-write it, and every write is atomic (temporary file, then
rename): :class:`JobStore`. A job's status comes from its record and its runner's liveness
(:func:`status_of`); cancelling kills the runner's process group (:func:`cancel_job`). The backend side (submit,
the runner's environment, logs): :mod:`tricloud.cluster.local_jobs`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.processes import alive, kill_group, stop_group
from tricloud.cluster.base import JobState, JobStatus, SparkJob

log = logging.getLogger(__name__)

#: Seconds a cancelled Connect runner gets to interrupt its operations on the server before it is killed.
CONNECT_CANCEL_TIMEOUT = 15.0


@dataclass(frozen=True)
class JobRecord:
    """One local job, as the runner and the backend share it on disk (``<jobs dir>/<key>.json``).

    :param launches: how many runners were started for this key (a resubmission after a failure adds one).
    :param pid: the runner's pid; its process group holds spark-submit and the Python driver.
    :param create_time: the runner's start time (epoch seconds), to tell it from a reused pid.
    :param exit_code: spark-submit's exit code once known.
    :param error: why the job failed (the hook's message with the driver's last lines, or the watchdog's).
    :param cluster: the backend's settings, so the runner can watch the cluster.
    :param lost_cluster_timeout: seconds without a live worker before the runner gives up (0: no watch).
    :param mode: ``spark-submit``, or ``connect`` (the runner calls ``entry_module.run`` in a session of
        the Connect server at ``connect_url``).
    :param timings: when each phase of the launch ended (epoch seconds, by phase: ``submit``, ``spawned``,
        ``runner``, then the runner's own, e.g. ``session`` and ``ran``); :mod:`bench.connect` breaks a
        job's wall time down with them.
    """

    key: str
    job: dict[str, Any]
    conn_id: str
    driver_log: str
    state: str = JobState.PENDING.value
    launches: int = 0
    pid: int | None = None
    create_time: float | None = None
    exit_code: int | None = None
    error: str | None = None
    application_id: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    cluster: dict[str, Any] = field(default_factory=dict)
    lost_cluster_timeout: float = 60.0
    mode: str = "spark-submit"
    connect_url: str | None = None
    entry_module: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def spark_job(self) -> SparkJob:
        data = dict(self.job)
        data["args"] = tuple(data.get("args", ()))
        return SparkJob(**data)


def now() -> str:
    return datetime.now(UTC).isoformat()


class JobStore:
    """The records of one cluster's jobs in ``jobs_dir``; every change under the key's lock."""

    def __init__(self, jobs_dir: Path) -> None:
        self.dir = Path(jobs_dir)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def log_path(self, key: str) -> Path:
        return self.dir / f"{key}.log"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{key}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released on close, also when the holder dies
            yield

    def read(self, key: str) -> JobRecord | None:
        try:
            data = json.loads(self.path(key).read_text())
        except FileNotFoundError:
            return None
        return JobRecord(**data)

    def write(self, record: JobRecord) -> None:
        path = self.path(record.key)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(record), default=str, indent=1))
        tmp.replace(path)

    def update(self, key: str, **changes: Any) -> JobRecord:
        """Apply ``changes`` to the record under its lock (a CANCELLED record is not overwritten)."""
        with self.locked(key):
            current = self.read(key)
            if current is None:
                raise FileNotFoundError(f"no record of job {key} in {self.dir}")
            if current.state == JobState.CANCELLED.value and "state" in changes:
                changes = {k: v for k, v in changes.items() if k not in ("state", "error")}
            record = replace(current, **changes)
            self.write(record)
            return record


def status_of(store: JobStore, key: str) -> JobStatus:
    """The job's state from its record and the runner's liveness (a dead runner of an active job: FAILED)."""
    record = store.read(key)
    if record is None:
        return JobStatus(JobState.FAILED, "MISSING", f"no record of job {key} in {store.dir}")
    state = JobState(record.state)
    if state.active and record.pid and not alive(record.pid, record.create_time):
        with store.locked(key):  # the runner may have finished between the two reads
            record = store.read(key) or record
            if JobState(record.state).active:
                # spark-submit and the driver may outlive a runner killed alone: stop them, so that a
                # resubmission never runs beside them, and record the outcome.
                kill_group(record.pid)
                record = replace(
                    record,
                    state=JobState.FAILED.value,
                    error=f"the runner of job {key} (pid {record.pid}) died without recording an outcome "
                    f"(killed, or its machine restarted); driver log {record.driver_log}",
                    finished_at=now(),
                )
                store.write(record)
        state = JobState(record.state)
    return JobStatus(state, record.state, record.error, exit_code=record.exit_code)


def cancel_job(store: JobStore, key: str) -> bool:
    """Kill the job's runner group (spark-submit, driver); record CANCELLED. False if already finished.

    A Connect job's runner is asked first (SIGTERM, outside the key's lock, which its handler takes to
    record CANCELLED): it interrupts its session's operations on the server, which killing the client
    alone would leave running. Then the group is killed.
    """
    record = store.read(key)
    if record is None or not JobState(record.state).active:
        return False
    if record.mode == "connect" and record.pid and alive(record.pid, record.create_time):
        stop_group(record.pid, timeout=CONNECT_CANCEL_TIMEOUT)
    with store.locked(key):
        record = store.read(key)
        ended = record is None or not JobState(record.state).active
        if ended and (record is None or record.state != JobState.CANCELLED.value):
            return False  # it ended on its own meanwhile
        if record.pid and alive(record.pid, record.create_time):
            kill_group(record.pid)
        if record.state != JobState.CANCELLED.value:
            store.write(replace(record, state=JobState.CANCELLED.value, error="cancelled", finished_at=now()))
    log.info("Cancelled job %s (runner pid %s)", key, record.pid)
    return True
