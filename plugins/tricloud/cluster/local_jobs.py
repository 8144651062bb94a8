"""Jobs on the local standalone cluster: spark-submit in a detached runner, one JSON record per job key.

``submit`` starts ``python -m tricloud.cluster.local_driver <record>`` in a session of its own: the
runner calls the provider's ``SparkSubmitHook.submit`` and keeps the record
``<state dir>/spark/jobs/<key>.json`` up to date (runner pid and start time, state, exit code, error,
driver log file). Because the runner is not a child of the task in any way that matters (own session,
own process group), a task whose process dies leaves its job running, and its retry finds the job by
the handle or by the key and waits for it instead of starting a second one. ``cancel`` kills the
runner's process group: spark-submit and the Python driver with it (what ``SparkSubmitHook.on_kill``
does, plus the driver). The runner also keeps the lost-cluster watchdog: when the master has had no
live worker for ``lost_cluster_timeout`` seconds it stops spark-submit and records why.

The records, their locking, a job's status and its cancel: :mod:`tricloud.cluster.local_job_store`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from include.jobs.staged_io import OBJECT_STORE_IO_ENV, STAGED
from include.lake_fs import is_object_store
from include.processes import identity
from tricloud.cluster.base import JobHandle, JobState, JobStatus, SparkJob
from tricloud.cluster.local_job_store import JobRecord, JobStore, cancel_job, now, status_of

log = logging.getLogger(__name__)

#: Lines of the driver log quoted in a failure (the provider hook quotes its own tail too).
ERROR_TAIL_LINES = 40
#: Seconds between two reads of a job's record while :meth:`LocalJobsMixin.wait` waits for its end.
RECORD_POLL = 0.1


def entry_module(application: str | Path) -> str | None:
    """The module (``include.jobs.<name>``) of a job file under ``include/jobs`` that exposes
    ``run(spark, argv)``, the entry a Connect session calls; None for any other application.

    Read with :mod:`ast`, not imported: the task process need not import pyspark to decide.
    """
    import ast

    from tricloud.settings import JOBS_DIR

    path = Path(application).resolve()
    if path.parent != JOBS_DIR or path.suffix != ".py":
        return None
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    if any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body):
        return f"include.jobs.{path.stem}"
    return None


def runner_env(job: SparkJob, conn_uri: str | None, conn_id: str) -> dict[str, str]:
    """The runner's environment: this one, the project importable, the job's env, the Spark connection,
    and ``staged`` object-store I/O when ``LAKE_ROOT`` is an object store (unless set otherwise).

    The connection is handed over as ``AIRFLOW_CONN_<ID>`` (the runner is no task: it cannot ask the
    API server), so the provider hook resolves the very connection the task resolved.
    """
    import tricloud
    from tricloud import settings

    plugins = str(Path(tricloud.__file__).resolve().parent.parent)
    env = {**os.environ, **settings.python_env(), **job.env}
    if is_object_store(env.get(settings.LAKE_ROOT_ENV, "")):
        # This cluster's Spark has no object-store connector (no hadoop-aws): the driver stages the
        # lake's objects through local disk, shared with the executors on this host (include/jobs/staged_io.py).
        env.setdefault(OBJECT_STORE_IO_ENV, STAGED)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([plugins, *env["PYTHONPATH"].split(os.pathsep)]))
    if conn_uri:
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_uri
    # A task's environment names a metadata DB that makes a new `import airflow` fail
    # ("airflow-db-not-allowed:///", set by the Task SDK's supervisor). The runner needs no DB at all:
    # an in-memory one keeps Airflow's import working without reaching the real metadata DB.
    env.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    # A process that opened a Spark Connect session has these set (pyspark sets the first itself): a
    # spark-submit driver inheriting them would try to be a Connect client ("CONNECT_URL_NOT_SET").
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    env.pop("SPARK_REMOTE", None)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "sqlite://"
    return env


def spawn_runner(store: JobStore, record: JobRecord, env: dict[str, str]) -> JobRecord:
    """Start the runner of ``record`` (caller holds the key's lock); returns the record with its pid."""
    log_file = open(store.log_path(record.key), "ab")  # noqa: SIM115 (handed to the child)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tricloud.cluster.local_driver", str(store.path(record.key))],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=store.dir,
            start_new_session=True,  # outlives the task; cancelled by process group
        )
    finally:
        log_file.close()
    spawned = {**record.timings, "spawned": time.time()}
    started = replace(record, pid=proc.pid, create_time=identity(proc.pid), timings=spawned)
    store.write(started)
    return started


def log_tail(path: str | Path, lines: int = ERROR_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" if there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_new_lines(path: str | Path, offset: int) -> tuple[list[str], int]:
    """Complete lines of ``path`` after byte ``offset``, and the offset after them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[: end + 1]
    return chunk.decode("utf-8", errors="replace").splitlines(), offset + len(chunk)


def wait_until(predicate, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def handle_of(backend_name: str, record: JobRecord) -> JobHandle:
    return JobHandle(
        backend=backend_name,
        job_id=str(record.pid or ""),
        key=record.key,
        result_uri=record.job["result_uri"],
        details={"driver_log": record.driver_log, "launches": record.launches},
    )


class LocalJobsMixin:
    """The job half of :class:`tricloud.cluster.local.LocalStandaloneBackend`.

    Expects of the class: ``name``, ``dir`` (the cluster's state dir), ``conn_id``, ``host``, ``port``,
    ``ui_url``, ``lost_cluster_timeout``, ``mode``, ``status()``, ``start()``, ``settings()``,
    ``connect_alive()`` and ``connect_endpoint()``.
    """

    @property
    def jobs(self) -> JobStore:
        return JobStore(self.dir / "jobs")

    def recover_workers(self) -> None:
        """The master answers but no worker is alive at submit: the local cluster restarts its workers.

        A backend that must not start machines from a job (they would outlive the run's teardown) overrides
        this to fail saying what to do.
        """
        log.warning("No live worker at %s: restarting the cluster's workers", self.master_url)
        self.start()

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Start ``job`` in a detached runner, unless a job of the same key is active or succeeded.

        Before a launch: the master must answer (fails in seconds, naming the connection, where
        spark-submit would retry for a minute), and a cluster whose master lives but whose workers died
        (the retry after a lost worker) gets its workers restarted.

        :raises ConnectionError: nothing listens at the connection's host and port.
        """
        from tricloud.connections import require_connection, require_reachable

        store = self.jobs
        submitted = time.time()
        with store.locked(job.key):
            existing = store.read(job.key)
            if existing is not None:
                status = status_of(store, job.key)
                if status.state.active or status.state is JobState.SUCCEEDED:
                    log.info(
                        "Job %s is already %s (runner pid %s): not submitted again", job.key, status.raw, existing.pid
                    )
                    return handle_of(self.name, existing)
            conn = require_connection(self.conn_id, ("spark",))
            require_reachable(self.host, self.port, f"Spark master of connection {self.conn_id!r}")
            cluster = self.status()
            if cluster.alive and cluster.workers == 0:
                self.recover_workers()
            module = entry_module(job.application) if self.mode == "connect" else None
            connect_url = None
            if module:
                if not self.connect_alive():  # e.g. the retry of a job whose server died
                    log.warning("The Spark Connect server is not running: starting it")
                    self.start()
                connect_url = self.connect_endpoint()[2]
            data = asdict(job)
            data["args"] = list(job.args)
            record = JobRecord(
                key=job.key,
                job=data,
                conn_id=self.conn_id,
                driver_log=str(store.log_path(job.key)),
                launches=(existing.launches if existing else 0) + 1,
                submitted_at=now(),
                cluster=self.settings(),
                lost_cluster_timeout=self.lost_cluster_timeout,
                mode="connect" if module else "spark-submit",
                connect_url=connect_url,
                entry_module=module,
                timings={"submit": submitted},
            )
            store.write(record)
            record = spawn_runner(store, record, runner_env(job, conn.get_uri(), self.conn_id))
        log.info("Submitted job %s (runner pid %d); driver log %s", job.key, record.pid, record.driver_log)
        return handle_of(self.name, record)

    def job_status(self, handle: JobHandle) -> JobStatus:
        return status_of(self.jobs, handle.key)

    def wait(self, handle: JobHandle, seconds: float) -> None:
        """Sleep up to ``seconds``, returning as soon as the job's record says it ended (read every
        :data:`RECORD_POLL` s: one small file; the operator's 2 s poll added 1 s per job on average)."""
        store = self.jobs

        def ended() -> bool:
            record = store.read(handle.key)
            return record is None or not JobState(record.state).active

        wait_until(ended, seconds, poll=RECORD_POLL)

    def cancel(self, handle: JobHandle) -> None:
        cancel_job(self.jobs, handle.key)

    def driver_log(self, handle: JobHandle) -> str | None:
        record = self.jobs.read(handle.key)
        return record.driver_log if record else handle.details.get("driver_log")

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """The recorded error (spark-submit's exit code and the driver's last lines), or the log's tail."""
        path = self.driver_log(handle)
        message = status.message or f"job {handle.key} ended {status.raw}"
        if "Last spark-submit output" not in message and path:
            tail = log_tail(path)
            if tail:
                message += f"\nLast lines of the driver log:\n{tail}"
        return f"{message}\nFull driver log: {path}" if path else message

    def log_lines(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        path = self.driver_log(handle)
        return read_new_lines(path, offset) if path else ([], offset)

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        links = {"cluster": self.ui_url}
        record = self.jobs.read(handle.key) if handle else None
        if record and record.application_id:
            links["job"] = f"{self.ui_url}/app/?appId={record.application_id}"
        if record:
            links["driver_log"] = Path(record.driver_log).as_uri()
        return links
