"""A Spark standalone cluster on this machine, started from the installed pyspark (``spark-class``).

Master and workers bind to the connection's host (127.0.0.1 by default). Their pid files and logs
live in ``<state dir>/spark``, so any process (a task, ``make stop``, a test) can find and stop them.
Ports and sizes come from Spark's own environment variables, so docker compose shares them:
``SPARK_MASTER_WEBUI_PORT``, ``SPARK_WORKER_WEBUI_PORT``, ``SPARK_WORKER_CORES``, ``SPARK_WORKER_MEMORY``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from include.processes import alive, kill_group, write_pid
from tricloud import settings
from tricloud.cluster.base import ClusterBackend, ClusterInfo, ClusterStatus
from tricloud.cluster.local_connect import CONNECT, SERVER_APP_NAME, ConnectServerMixin, submit_mode
from tricloud.cluster.local_jobs import LocalJobsMixin
from tricloud.cluster.standalone import cluster_status, master_state

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class LocalStandaloneBackend(LocalJobsMixin, ConnectServerMixin, ClusterBackend):
    """The standalone cluster of connection ``conn_id`` (type ``spark``), and its jobs (:class:`LocalJobsMixin`).

    :param lost_cluster_timeout: seconds a job's runner waits without a live worker before stopping it.
    :param mode: ``spark-submit`` or ``connect`` (default: ``TRICLOUD_SPARK_SUBMIT_MODE``); in ``connect``
        mode :meth:`start` also starts the Spark Connect server (:mod:`tricloud.cluster.local_connect`).
    :param connect_conn_id: the server's ``spark_connect`` connection (default ``spark_connect_default``);
        a second cluster on this machine needs one of its own (another port).
    """

    name = "local"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7077,
        webui_port: int | None = None,
        workers: int = 1,
        worker_cores: int | None = None,
        worker_memory: str | None = None,
        worker_webui_port: int | None = None,
        state_dir: str | Path | None = None,
        conn_id: str = "spark_default",
        lost_cluster_timeout: float = 60.0,
        mode: str | None = None,
        connect_conn_id: str | None = None,
    ) -> None:
        env = os.environ
        self.connect_conn_id = connect_conn_id or self.connect_conn_id
        self.mode = submit_mode({"TRICLOUD_SPARK_SUBMIT_MODE": mode} if mode else None)
        self.conn_id = conn_id
        self.lost_cluster_timeout = float(lost_cluster_timeout)
        self.host = host
        self.port = int(port)
        self.webui_port = int(webui_port or env.get("SPARK_MASTER_WEBUI_PORT", 8090))
        self.workers = int(workers)
        self.worker_cores = int(worker_cores or env.get("SPARK_WORKER_CORES", 2))
        self.worker_memory = str(worker_memory or env.get("SPARK_WORKER_MEMORY", "2g"))
        self.worker_webui_port = int(worker_webui_port or env.get("SPARK_WORKER_WEBUI_PORT", 8091))
        self.dir = Path(state_dir or settings.state_dir()) / "spark"
        self.state_root = Path(state_dir or settings.state_dir())

    @classmethod
    def from_settings(cls, conn_id: str | None = None, **overrides: Any) -> LocalStandaloneBackend:
        """The cluster of Spark connection ``conn_id`` (default ``spark_default``), host and port from it.

        :raises AirflowNotFoundException: the connection is missing (names ``AIRFLOW_CONN_SPARK_DEFAULT``).
        :raises ValueError: it is not of type ``spark`` or has no host/port.
        """
        from tricloud.connections import env_name, require_connection

        conn_id = conn_id or "spark_default"
        conn = require_connection(conn_id, ("spark",))
        if not conn.host or not conn.port:
            raise ValueError(
                f"connection {conn_id!r} needs a host and port for the local backend: set {env_name(conn_id)}, e.g. "
                "'spark://127.0.0.1:7077?deploy-mode=client&spark-binary=spark-submit'"
            )
        return cls(host=conn.host, port=conn.port, conn_id=conn_id, **overrides)

    def settings(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this backend in another process (the job runner's watchdog)."""
        return {
            "host": self.host,
            "port": self.port,
            "webui_port": self.webui_port,
            "workers": self.workers,
            "worker_cores": self.worker_cores,
            "worker_memory": self.worker_memory,
            "worker_webui_port": self.worker_webui_port,
            "state_dir": str(self.state_root),
            "conn_id": self.conn_id,
            "mode": self.mode,
            "connect_conn_id": self.connect_conn_id,
        }

    # -- inspection -------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def master_json(self, timeout: float = 2.0) -> dict | None:
        return master_state(self.ui_url, timeout)

    def status(self) -> ClusterStatus:
        # The Connect server is part of the cluster, not a job that keeps it busy.
        return cluster_status(self.master_json(), ignore_apps={SERVER_APP_NAME}, worker_gone=self._died)

    def _died(self, worker: dict) -> bool:
        """A worker the master still lists but whose process (started by us) is gone.

        The master only drops a lost worker after its heartbeat timeout; our pid file knows at once.
        Workers are matched by web UI port (``worker_webui_port + i`` for ``worker-i``).
        """
        port = urllib.parse.urlsplit(worker.get("webuiaddress", "")).port
        if port is None:
            return False
        pid_file = self.dir / f"worker-{port - self.worker_webui_port}.pid"
        try:
            return not alive(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            return False  # not one of ours: trust the master

    def pids(self) -> dict[str, int]:
        """Live processes this backend started, by role (``master``, ``worker-0`` ...)."""
        found = {}
        for pid_file in sorted(self.dir.glob("*.pid")):
            try:
                pid = int(pid_file.read_text().strip())
            except ValueError:
                continue
            if alive(pid):
                found[pid_file.stem] = pid
        return found

    # -- lifecycle --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        """Hold the cluster's lock file: start and stop run one at a time across processes.

        Two tasks of a run (or two DAGs) that find the cluster down at the same moment would both
        spawn ``worker-0``; the second pid file overwrites the first and that worker JVM is orphaned
        (no pid file, so ``make stop`` never stops it). Found by the topology benchmark.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file is closed, also if we die
            yield

    def _spawn(self, role: str, args: list[str], binary: str = "spark-class") -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        spark_class = Path(sys.executable).parent / binary
        env = {
            **os.environ,
            **settings.python_env(),
            "SPARK_LOCAL_IP": self.host,
            "SPARK_WORKER_DIR": str(self.dir / "work"),
            "SPARK_NO_DAEMONIZE": "1",
        }
        if role == "connect":
            # spark-submit sizes a Connect server like the Thrift server: SPARK_DAEMON_MEMORY and
            # SPARK_DAEMON_JAVA_OPTS before spark.driver.memory (SparkSubmitCommandBuilder.isConnectServer).
            # The small daemon heap meant for master and worker (stack LEAN_SETTINGS) is below Spark's
            # 450 MiB minimum for a driver: the server keeps its own SERVER_CONF sizing.
            for name in ("SPARK_DAEMON_MEMORY", "SPARK_DAEMON_JAVA_OPTS"):
                env.pop(name, None)
        log_file = open(self.dir / f"{role}.log", "ab")  # noqa: SIM115 (handed to the child)
        # A new session: the cluster outlives the task that started it and is stopped by group.
        proc = subprocess.Popen(
            [str(spark_class), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.dir,
            start_new_session=True,
        )
        log_file.close()
        write_pid(self.dir / f"{role}.pid", proc.pid)
        log.info("Started Spark %s (pid %d), log %s", role, proc.pid, self.dir / f"{role}.log")
        return proc.pid

    def start(self, timeout: float = 120.0) -> ClusterInfo:
        with self._locked():
            return self._start(timeout)

    def _start(self, timeout: float) -> ClusterInfo:
        started = False
        status = self.status()
        if not status.alive:
            if "master" in self.pids():
                # Our master process exists but does not answer: replace it, do not stack a second one.
                self._stop(30.0)
            elif "connect" in self.pids():
                kill_group(self.pids()["connect"])  # registered with the master that is gone
            self._spawn(
                "master",
                [MASTER_CLASS, "--host", self.host, "--port", str(self.port), "--webui-port", str(self.webui_port)],
            )
            started = True
        running = self.pids()
        for i in range(self.workers):
            role = f"worker-{i}"
            if role in running:
                continue
            # Restart a worker we started that died, even while the master still lists it (it only
            # notices a lost worker after a heartbeat timeout); otherwise top up to `workers`.
            if (self.dir / f"{role}.pid").exists() or status.workers < self.workers:
                self._spawn(
                    role,
                    [
                        WORKER_CLASS,
                        self.master_url,
                        "--host",
                        self.host,
                        "--cores",
                        str(self.worker_cores),
                        "--memory",
                        self.worker_memory,
                        "--webui-port",
                        str(self.worker_webui_port + i),
                    ],
                )
                started = True
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.alive and status.workers >= self.workers:
                break
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {p.name}:\n" + p.read_text(errors="replace")[-2000:] for p in sorted(self.dir.glob("*.log"))
                )
                raise TimeoutError(
                    f"Spark cluster at {self.master_url} not ready after {timeout:.0f}s "
                    f"({status.workers}/{self.workers} workers alive). Logs:\n{logs}"
                )
            time.sleep(0.5)
        if not started:
            log.info("Reusing the running Spark cluster at %s (%d workers)", self.master_url, status.workers)
        details = {"state_dir": str(self.dir), "mode": self.mode}
        if self.mode == CONNECT:
            if self._start_connect(timeout):
                log.info("Started the Spark Connect server at %s", self.connect_endpoint()[2])
            details["connect_url"] = self.connect_endpoint()[2]
        return ClusterInfo(
            backend=self.name,
            master_url=self.master_url,
            ui_url=self.ui_url,
            started=started,
            workers=status.workers,
            details=details,
        )

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        with self._locked():
            return self._stop(timeout)

    def _stop(self, timeout: float) -> bool:
        pids = self.pids()
        # The Connect server and workers first, so the master does not log them as lost.
        order = sorted(pids, key=lambda role: role == "master")
        for role in order:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pids[role], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for role, pid in pids.items():
            if alive(pid):
                log.warning("Spark %s (pid %d) ignored SIGTERM: killing", role, pid)
                kill_group(pid)
        for pid_file in self.dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        if pids:
            log.info("Stopped Spark %s", ", ".join(sorted(pids)))
        return bool(pids)
