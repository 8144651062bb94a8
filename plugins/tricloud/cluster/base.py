"""The interface every cluster backend implements: the cluster's lifecycle and the jobs' lifecycle.

A backend owns everything that differs between a Spark standalone cluster on this machine, EMR on EC2,
EMR Serverless (and Dataproc / Azure VMs next): starting or reusing the cluster, staging the
application and the project code where the cluster can read them, submitting a job idempotently,
polling, cancelling, where the driver's log is, and reading the job's result. Operators stay thin:
they build a :class:`SparkJob`, hand it to the backend chosen by configuration, and keep the
:class:`JobHandle` (JSON) so that a retry re-attaches instead of resubmitting.

The job's result (row counts, output paths) travels through the lake: the operator passes
``--metrics-file <result_uri>`` (a path or URI under ``$LAKE_ROOT/_jobs/``) and the backend reads that
object after success. In cluster deploy mode the driver runs on another machine, so a local temporary
file would not do.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

Ready = TypeVar("Ready")
TornDown = TypeVar("TornDown")


@dataclass(frozen=True)
class ClusterInfo:
    """What a DAG needs to know about a running cluster (serialisable to XCom)."""

    backend: str
    master_url: str
    ui_url: str | None
    started: bool  # True when this call started it (so this run may stop it)
    workers: int
    details: dict = field(default_factory=dict)
    #: The backend's own id of the cluster (EMR ``j-…``, EMR Serverless application id); None locally.
    cluster_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterStatus:
    alive: bool
    workers: int
    active_apps: int


class JobState(StrEnum):
    """A job's state in our words; each backend maps its own (EMR ``StepState``, …) onto these."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)

    @property
    def terminal(self) -> bool:
        return not self.active


#: Characters every backend accepts in a job key (EMR step names, client tokens ≤ 64, file names).
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def job_key(dag_id: str, task_id: str, run_id: str, map_index: int = -1, try_number: int = 1) -> str:
    """The idempotency key of one task attempt's job: the same key never starts two jobs.

    ``tricloud-<readable prefix>-<12 hex of SHA-256 over all parts>``, at most 64 characters of
    ``[A-Za-z0-9._-]`` (EMR Serverless ``clientToken`` allows 64; step names and file names take it).
    The try number is part of it: a retry after a *failed* job must be able to submit afresh, while a
    retry after a lost worker re-attaches through the stored :class:`JobHandle` before submitting.
    """
    parts = f"{dag_id}\x00{task_id}\x00{run_id}\x00{map_index}\x00{try_number}"
    digest = hashlib.sha256(parts.encode()).hexdigest()[:12]
    readable = _KEY_UNSAFE.sub("_", f"{task_id}.{try_number}")[:40]
    return f"tricloud-{readable}-{digest}"


@dataclass(frozen=True)
class SparkJob:
    """What to run, independent of where.

    :param key: idempotency key (:func:`job_key`).
    :param name: application name shown by Spark and the cloud console.
    :param application: local path of the ``.py`` file (under the project's ``include/jobs``).
    :param args: application arguments, without ``--metrics-file`` (the backend appends it).
    :param result_uri: where the job writes its JSON metrics: a local path or an object-store URI.
    :param conf: Spark configuration.
    :param executor_memory: e.g. ``768m``; None for the cluster's default.
    :param driver_memory: e.g. ``1g``; None for the cluster's default.
    :param env: extra environment for the driver.
    """

    key: str
    name: str
    application: str
    args: tuple[str, ...]
    result_uri: str
    conf: Mapping[str, str] = field(default_factory=dict)
    executor_memory: str | None = None
    driver_memory: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def submitted_args(self) -> list[str]:
        return [*self.args, "--metrics-file", self.result_uri]


@dataclass(frozen=True)
class JobHandle:
    """A submitted job, enough to find it again from another process (stored across retries).

    :param backend: backend name (``local``, ``emr``, ``emr-serverless``).
    :param job_id: the backend's id (local: driver pid; EMR: step id ``s-…``; Serverless: job run id).
    :param key: the job's idempotency key.
    :param result_uri: where the job writes its metrics.
    :param cluster_id: EMR cluster ``j-…`` / Serverless application id; None locally.
    :param details: backend extras (JSON-serialisable), e.g. the local driver's log file.
    """

    backend: str
    job_id: str
    key: str
    result_uri: str
    cluster_id: str | None = None
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | str) -> JobHandle:
        data = json.loads(value) if isinstance(value, str) else dict(value)
        return cls(**data)


@dataclass(frozen=True)
class JobStatus:
    """A job's state now; ``message`` carries the backend's reason (the driver's error) when it failed.

    ``exit_code`` is the driver's (or spark-submit's) exit code when the backend knows it: the operator
    fails without retry on :data:`include.lease.LEASE_LOST_EXIT`.
    """

    state: JobState
    raw: str
    message: str | None = None
    exit_code: int | None = None


class JobFailed(RuntimeError):
    """The job ended FAILED or CANCELLED; the message has the driver's error and the log's location."""

    def __init__(self, message: str, *, handle: JobHandle, status: JobStatus, driver_log: str | None = None):
        super().__init__(message)
        self.handle = handle
        self.status = status
        self.driver_log = driver_log


def with_log_tail(head: str, where: str | None, tail: str | None, missing: str, what: str = "driver log") -> str:
    """A failed job's message for the task log: ``head``, then the last lines of its driver log.

    :param where: the log's URI (``s3://``, ``gs://``, a path), None when the service named none.
    :param tail: the log's last lines, None when it could not be read (yet).
    :param missing: said instead of ``where`` when that is None.
    :returns: ``head`` + ``--- <where> (last lines) ---`` + ``tail``, or ``head`` + ``(<what>: <where>)``.
    """
    if tail:
        return f"{head}\n--- {where} (last lines) ---\n{tail}"
    return f"{head}\n({what}: {where or missing})"


def wait_or_tear_down(
    wait: Callable[[], Ready],
    tear_down: Callable[[], TornDown],
    failure: Callable[[BaseException, TornDown], str],
) -> Ready:
    """``wait()`` for a cluster (or application) this start created; if the wait fails, tear it down first.

    A cluster left behind by a failed start costs money every hour, so ``tear_down()`` runs on any error,
    then ``RuntimeError(failure(err, torn_down))`` is raised from the error (``torn_down``: what
    ``tear_down()`` returned, e.g. whether there was anything left to delete). A ``BaseException`` that is
    not an ``Exception`` (the task being killed) propagates as it is, after the tear-down.

    :returns: what ``wait()`` returned.
    :raises RuntimeError: the wait failed; the message is ``failure``'s.
    """
    try:
        return wait()
    except BaseException as err:
        torn_down = tear_down()
        if not isinstance(err, Exception):  # the task is being killed: let that propagate as it is
            raise
        raise RuntimeError(failure(err, torn_down)) from err


class ClusterBackend(ABC):
    """Start (or reuse), inspect and stop one cluster, and run jobs on it. Implementations are idempotent."""

    name: str

    # -- the cluster ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def master_url(self) -> str:
        """Where jobs go, e.g. ``spark://127.0.0.1:7077`` or ``emr://j-…``."""

    @property
    @abstractmethod
    def ui_url(self) -> str | None:
        """The cluster's web UI or console page (operator extra links point here)."""

    @abstractmethod
    def status(self) -> ClusterStatus:
        """Current state; ``alive=False`` when nothing answers."""

    @abstractmethod
    def start(self, timeout: float = 120.0) -> ClusterInfo:
        """Make sure the cluster is up with its workers registered; reuse a running one."""

    @abstractmethod
    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Stop what this backend started (``cluster_id`` from :class:`ClusterInfo`); True if stopped.

        Stopping a cluster that is already gone is success (returns False), never an error.
        """

    # -- the jobs ------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the job's code where the cluster reads it and start the job; idempotent on ``job.key``.

        A job with the same key that is active or succeeded is returned, not started again.
        """

    @abstractmethod
    def job_status(self, handle: JobHandle) -> JobStatus:
        """The job's state now."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop the job; a job already finished is left as it is."""

    @abstractmethod
    def driver_log(self, handle: JobHandle) -> str | None:
        """Where the driver's full log is (path or URI), None when unknown."""

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """A short account of why the job failed, for the task log (backend reason + log tail)."""
        return status.message or f"job {handle.job_id} ended {status.raw}"

    def read_result(self, handle: JobHandle) -> dict[str, Any]:
        """The metrics the job wrote at ``handle.result_uri``; ``{}`` when it wrote none."""
        from include.lake_fs import read_json_or_none

        return read_json_or_none(handle.result_uri) or {}

    def log_lines(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        """New lines of the driver's log after ``offset`` (an opaque cursor, 0 at first) and the next cursor.

        The synchronous poll copies them into the task log, as spark-submit's output used to be; a
        backend whose log is only readable after the job (EMR) returns ``([], offset)``.
        """
        return [], offset

    def wait(self, handle: JobHandle, seconds: float) -> None:
        """Pause between two status polls: ``seconds``, or less when the backend sees the job end sooner.

        The default sleeps; a backend whose status is cheap to read (the local one: a file) returns as soon
        as the job ended, so a poll interval does not add to every job's wall time.
        """
        import time

        time.sleep(seconds)

    def trigger(self, handle: JobHandle, poll_interval: float) -> BaseTrigger | None:
        """A trigger that waits for the job in the triggerer (deferrable mode); None: cannot defer."""
        return None

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        """Named URLs for the UI's extra links: ``cluster``, ``job``, ``driver_log`` (those known)."""
        return {"cluster": self.ui_url} if self.ui_url else {}
