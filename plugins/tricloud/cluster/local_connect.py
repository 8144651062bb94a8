"""The Spark Connect server of the local standalone cluster, and the setting that picks how jobs run.

``TRICLOUD_SPARK_SUBMIT_MODE`` (read by the local backend only; the cloud backends always spark-submit):

- ``spark-submit``: every job is a fresh spark-submit (its own JVM, driver and executors);
- ``connect``: ``start_cluster`` also starts one Spark Connect server on the cluster, and each job whose
  module exposes ``run(spark, argv)`` runs in a session of its own on that server (the detached runner
  calls it in-process against ``SparkSession.builder.remote(url)``).

The server is ``spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer`` (pyspark 4.2
ships the jar, not the start script), bound to the connection ``spark_connect_default`` (type
``spark_connect``, host 127.0.0.1); its pid file ``connect.pid`` and log ``connect.log`` sit beside the
master's, so ``stop`` (and ``make stop``) stop it with the cluster. Its executors are dynamic (at most
one 1-core executor, kept warm unless ``TRICLOUD_CONNECT_MIN_EXECUTORS=0``): the cores it leaves are what
spark-submit jobs (the athlete DAG) get beside it. Why these settings: docs/design.md, "A warm Spark
session: Spark Connect" and "Spark Connect: where the time goes".
"""

from __future__ import annotations

import os
import socket
import time

from include.errors import ConfigError

#: The setting naming how the local backend runs jobs, and its values.
MODE_ENV = "TRICLOUD_SPARK_SUBMIT_MODE"
SPARK_SUBMIT = "spark-submit"
CONNECT = "connect"
MODES = (SPARK_SUBMIT, CONNECT)
#: The default when the setting is absent.
DEFAULT_MODE = SPARK_SUBMIT

#: The connection the server binds to and clients reach (type ``spark_connect``).
CONNECT_CONN_ID = "spark_connect_default"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: The server's application name on the master: :meth:`status` does not count it as a job.
SERVER_APP_NAME = "tricloud-connect-server"

#: How many executors the server keeps while idle: 1 (default) keeps one warm, so a job does not wait for
#: an executor JVM to start and register (measured 4-6 s per job after an idle spell: docs/design.md,
#: "Spark Connect: where the time goes"); 0 gives its core and memory back after ``IDLE``.
MIN_EXECUTORS_ENV = "TRICLOUD_CONNECT_MIN_EXECUTORS"
DEFAULT_MIN_EXECUTORS = 1

#: The server's Spark settings (measured on 2 cores: docs/design.md). Executors come and go with the work
#: (dynamic allocation; shuffle tracking instead of an external shuffle service), one core at most, so a
#: spark-submit job always finds a core beside it; with ``TRICLOUD_CONNECT_MIN_EXECUTORS=0`` all cores
#: once the server idled ``IDLE``.
IDLE = "15s"
JVM_OPTS = "-XX:+UseSerialGC -Xmn64m -XX:TieredStopAtLevel=1 -XX:MaxMetaspaceSize=256m -XX:ReservedCodeCacheSize=64m"
SERVER_CONF: dict[str, str] = {
    "spark.app.name": SERVER_APP_NAME,
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.shuffleTracking.enabled": "true",
    "spark.dynamicAllocation.shuffleTracking.timeout": IDLE,
    "spark.dynamicAllocation.minExecutors": "0",
    "spark.dynamicAllocation.maxExecutors": "1",
    "spark.dynamicAllocation.executorIdleTimeout": IDLE,
    "spark.dynamicAllocation.cachedExecutorIdleTimeout": IDLE,
    "spark.executor.cores": "1",
    "spark.cores.max": "1",
    # Memory (issue 16 §5, bench/results/stack_memory.md): 512 MiB heaps (Spark's floor is 450 MiB), the
    # serial GC, and a 64 MiB young generation: a JVM's resident heap is what its eden has ever touched
    # plus the live old generation, and the default eden (a third of the heap) was touched in full every
    # few jobs. The C1 compiler only: C2's compile arenas and larger code held ~50 MiB per JVM (a 100k-row
    # hour runs no loop long enough to pay C2 back). The metaspace cap only turns a runaway into a clear
    # OutOfMemoryError.
    "spark.executor.memory": "512m",
    "spark.driver.memory": "512m",
    "spark.driver.extraJavaOptions": JVM_OPTS,
    "spark.executor.extraJavaOptions": JVM_OPTS,
    "spark.log.level": "WARN",
    "spark.sql.session.timeZone": "UTC",
}


def min_executors(environ: dict[str, str] | None = None) -> int:
    """Executors the Connect server keeps while idle (``TRICLOUD_CONNECT_MIN_EXECUTORS``: 0 or 1, default 1).

    :raises ValueError: any other value, naming the setting and the values it takes.
    """
    value = (os.environ if environ is None else environ).get(MIN_EXECUTORS_ENV, "").strip()
    if not value:
        return DEFAULT_MIN_EXECUTORS
    if value not in ("0", "1"):
        raise ConfigError(
            f"{MIN_EXECUTORS_ENV}={value!r}: set it to 1 (keep one executor warm, faster jobs) or 0 "
            "(give its core and memory back when the server idles)"
        )
    return int(value)


def server_conf(environ: dict[str, str] | None = None) -> dict[str, str]:
    """:data:`SERVER_CONF` with the configured :func:`min_executors`."""
    return {**SERVER_CONF, "spark.dynamicAllocation.minExecutors": str(min_executors(environ))}


def submit_mode(environ: dict[str, str] | None = None) -> str:
    """The configured mode (:data:`MODES`), :data:`DEFAULT_MODE` when unset.

    :raises ValueError: an unknown value, naming the setting and the values it takes.
    """
    value = (os.environ if environ is None else environ).get(MODE_ENV, "").strip() or DEFAULT_MODE
    if value not in MODES:
        raise ConfigError(f"{MODE_ENV}={value!r} is not a mode: set it to one of {', '.join(MODES)}")
    return value


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (or a child of it) holds a listening TCP socket on ``port``.

    A port that answers is not enough: a leftover of an earlier server (or anything else) may hold it, and
    a new server that cannot bind exits.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return True
    return False


class ConnectServerMixin:
    """The Connect server half of :class:`tricloud.cluster.local.LocalStandaloneBackend`.

    Expects of the class: ``dir``, ``host``, ``master_url``, ``pids()`` and ``_spawn(role, args, binary)``.
    """

    connect_conn_id: str = CONNECT_CONN_ID
    mode: str = DEFAULT_MODE

    def connect_endpoint(self) -> tuple[str, int, str]:
        """(host, port, ``sc://`` URL) of the server, from the ``spark_connect`` connection via the provider hook.

        :raises AirflowNotFoundException: the connection is missing (names its ``AIRFLOW_CONN_*``).
        :raises ValueError: wrong type, no port, or not on this machine's loopback.
        """
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        from tricloud.connections import env_name, require_connection

        conn = require_connection(self.connect_conn_id, ("spark_connect",))
        if not conn.port or conn.host not in ("127.0.0.1", "localhost"):
            raise ConfigError(
                f"connection {self.connect_conn_id!r} must name 127.0.0.1 and a port for the local backend's "
                f"Connect server: set {env_name(self.connect_conn_id)}, e.g. "
                '\'{"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15002}\''
            )
        return "127.0.0.1", int(conn.port), SparkConnectHook(conn_id=self.connect_conn_id).get_connection_url()

    def connect_alive(self) -> bool:
        """Our server process runs and listens on the connection's port."""
        pid = self.pids().get("connect")
        return bool(pid) and listens_on(pid, self.connect_endpoint()[1])

    def _start_connect(self, timeout: float) -> bool:
        """Start the server unless it is alive (caller holds the cluster lock); True when started.

        A server whose process lives but does not answer is stopped first (never two on one port).

        :raises TimeoutError: it did not listen within ``timeout`` s (with its log's tail).
        """
        from include.processes import kill_group

        host, port, url = self.connect_endpoint()
        running = self.pids().get("connect")
        if running and listens_on(running, port):
            return False
        if running:
            kill_group(running)
        conf = {
            **server_conf(),
            "spark.connect.grpc.binding.address": host,
            "spark.connect.grpc.binding.port": str(port),
        }
        args = ["--master", self.master_url, "--class", SERVER_CLASS, "--name", SERVER_APP_NAME]
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        # A server just killed (ours, by group) may hold its port for a moment while the kernel reaps it.
        released = time.monotonic() + 15
        while listening(host, port) and time.monotonic() < released:
            time.sleep(0.5)
        if listening(host, port):
            raise OSError(f"port {port} of {url} is taken by another process: stop it, or choose another port there")
        pid = self._spawn("connect", [*args, "spark-internal"], binary="spark-submit")
        deadline = time.monotonic() + timeout
        while not listens_on(pid, port):
            if "connect" not in self.pids() or time.monotonic() > deadline:
                tail = (self.dir / "connect.log").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"the Spark Connect server at {url} did not start within {timeout:.0f}s:\n{tail}")
            time.sleep(0.5)
        return True

    def stop_connect(self, timeout: float = 30.0) -> bool:
        """Stop the Connect server alone (the cluster keeps running); True when one was running."""
        from include.processes import stop_group

        pid = self.pids().get("connect")
        (self.dir / "connect.pid").unlink(missing_ok=True)
        return bool(pid) and stop_group(pid, timeout=timeout)
