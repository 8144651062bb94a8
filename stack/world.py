"""A world of its own for the test suite, the benchmarks and ``make screenshots``.

Built from ``.env.example``'s non-secret settings and from code, never from the user's ``.env``: its
own Spark standalone cluster, emulators, API and log-server ports (all chosen free, see
:mod:`stack.ports`), its own bucket/container name, Airflow home, Spark state dir, lake and SQLite
warehouse, all under one ``state`` directory. The user's connections (``AIRFLOW_CONN_*``),
``REPLICA_BUCKET`` and ``STORAGE_EMULATOR_HOST`` are never read, so a running ``make demo`` (or a
``.env`` pointed at real buckets) is never touched. :func:`stack.loopback.require_loopback` checks the
result before anything starts, and :func:`apply` drops every other ``AIRFLOW_*`` setting of the shell
(its metadata DB, config, executor, ``*_CMD`` secrets) so a user's real Airflow is never used either.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from stack import config, ports

#: Settings of .env.example a world never takes: where data goes, secrets, and every port.
NOT_TAKEN_PREFIXES = ("AIRFLOW_CONN_",)
NOT_TAKEN = {
    "REPLICA_BUCKET",
    "STORAGE_EMULATOR_HOST",
    "AIRFLOW_JWT_SECRET",
    "LAKE_ROOT",
    "AIRFLOW__API__PORT",
    "SPARK_MASTER_WEBUI_PORT",
    "SPARK_WORKER_WEBUI_PORT",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
}
#: The ports a world listens on, by role.
PORT_ROLES = (
    "spark",
    "spark_ui",
    "spark_worker_ui",
    "spark_connect",
    "s3",
    "gcs",
    "azure",
    "api",
    "worker_log",
    "trigger_log",
)
#: Azurite's documented development account (public, the same as in .env.example; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class World:
    """A world's state directory, environment, ports (by role, see :data:`PORT_ROLES`) and bucket."""

    state: Path
    env: dict[str, str]
    ports: dict[str, int]
    bucket: str

    def release_ports(self) -> None:
        """Drop the port reservations (call when the world's servers are stopped)."""
        ports.release(list(self.ports.values()))


def example_settings() -> dict[str, str]:
    """``.env.example`` without the settings a world chooses itself (:data:`NOT_TAKEN`)."""
    values = config.parse_env_file(config.ENV_EXAMPLE)
    return {k: v for k, v in values.items() if k not in NOT_TAKEN and not k.startswith(NOT_TAKEN_PREFIXES)}


def connections(p: dict[str, int], warehouse: Path) -> dict[str, str]:
    """The world's connections, every one on 127.0.0.1 (S3, GCS, Azure on their emulators)."""
    blob = f"http://127.0.0.1:{p['azure']}/devstoreaccount1"
    return {
        "AIRFLOW_CONN_SPARK_DEFAULT": f"spark://127.0.0.1:{p['spark']}?deploy-mode=client&spark-binary=spark-submit",
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT": json.dumps(
            {"conn_type": "spark_connect", "host": "127.0.0.1", "port": p["spark_connect"]}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": f"http://127.0.0.1:{p['s3']}", "region_name": "us-east-1"},
            }
        ),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "tricloud-local"}}
        ),
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{p['gcs']}",
        "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
            {
                "conn_type": "wasb",
                "extra": {
                    "connection_string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                    f"AccountKey={AZURITE_KEY};BlobEndpoint={blob};"
                },
            }
        ),
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    }


def build(state: Path, name: str = "test") -> World:
    """A new world under ``state`` (created), with free ports reserved for this process.

    :param state: directory for everything the world writes (Airflow home, Spark and emulator pid
        files and logs, lake, warehouse). Nothing is written elsewhere.
    :param name: prefix of the bucket/container name (``<name>-<12 hex>``, unique per world).
    """
    state = Path(state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    # Traversable, not listable: servers that drop root (Postgres, MariaDB) reach their own
    # directories inside (mkdtemp makes it 0700).
    state.chmod(0o711)
    p = dict(zip(PORT_ROLES, ports.free_ports(len(PORT_ROLES)), strict=True))
    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    lake = state / "lake"
    lake.mkdir(exist_ok=True)
    values = example_settings() | connections(p, state / "warehouse.sqlite")
    values |= {
        "REPLICA_BUCKET": bucket,
        "AIRFLOW__API__PORT": str(p["api"]),
        "SPARK_MASTER_WEBUI_PORT": str(p["spark_ui"]),
        "SPARK_WORKER_WEBUI_PORT": str(p["spark_worker_ui"]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(p["worker_log"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(p["trigger_log"]),
    }
    from cryptography.fernet import Fernet

    derived = config.derived_settings(
        values,
        home=state / "airflow",
        state=state,
        lake=lake,
        jwt_secret=secrets.token_hex(32),
        fernet_key=Fernet.generate_key().decode(),
    )
    return World(state=state, env={**values, **derived, **airflow_home(state / "airflow")}, ports=p, bucket=bucket)


def airflow_home(home: Path) -> dict[str, str]:
    """An Airflow home that owns its config file and its SQLite metadata DB (``airflow.cfg``, ``airflow.db``).

    Set explicitly, so an ``AIRFLOW_CONFIG`` or ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` of the user's
    shell can never make a world (or a second Airflow inside it) use the user's metadata DB.
    """
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def inherited_airflow(environ: dict[str, str], env: dict[str, str]) -> list[str]:
    """The ``AIRFLOW_*`` / ``AIRFLOW__*`` variables of ``environ`` that ``env`` does not set, sorted.

    E.g. a shell's ``AIRFLOW__CORE__EXECUTOR``, ``AIRFLOW__LOGGING__BASE_LOG_FOLDER`` or
    ``AIRFLOW__SECRETS__BACKEND_CMD``: Airflow would read them beside the world's own settings.
    """
    return sorted(k for k in environ if k.startswith("AIRFLOW_") and k not in env)


def apply(env: dict[str, str]) -> list[str]:
    """Make ``env`` the whole Airflow environment of this process: drop every inherited ``AIRFLOW_*``
    variable ``env`` does not set (:func:`inherited_airflow`), then set ``env``.

    :returns: the names dropped; the caller says so in a line (:func:`dropped_line`).
    """
    dropped = inherited_airflow(dict(os.environ), env)
    for name in dropped:
        del os.environ[name]
    os.environ.update(env)
    return dropped


def dropped_line(dropped: list[str], who: str = "the test suite") -> str:
    """The log line naming the shell's Airflow settings ``who`` ignores (empty when none)."""
    return f"tricloud: {who} ignores the shell's {', '.join(dropped)} (its world sets its own)" if dropped else ""


def strays(state: Path) -> list[psutil.Process]:
    """The processes still running for the world under ``state``, found without pid files.

    A process belongs to the world when it was started with its ``TRICLOUD_STATE_DIR`` (every server a world
    starts inherits the world's environment: emulators, Spark, Airflow and what they start), or when it runs
    in ``state`` or names it on its command line. This process and its ancestors are never included (a
    benchmark or test holding the world has its environment too). For clean-up after the pid-file stops
    (:func:`stack.__main__.down`): a process whose pid file was never written (interrupted between its
    start and the write) or whose group leader died is found here.
    """
    mark = str(Path(state).resolve())
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    found = []

    def names_the_world(text: str) -> bool:  # the directory itself or a path under it, not a sibling <mark>X
        return text == mark or text.endswith(mark) or (mark + os.sep) in text

    for proc in psutil.process_iter(["cmdline", "cwd", "environ", "status", "terminal"]):
        info = proc.info
        if proc.pid in skip or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        by_env = (info["environ"] or {}).get("TRICLOUD_STATE_DIR") == mark
        # By working directory or argument only a process without a terminal: the world's servers run in
        # sessions of their own, while a user's shell `cd`'d into the world or a `tail -f` of its log has one.
        by_path = info["terminal"] is None and (
            names_the_world(info["cwd"] or "") or any(names_the_world(arg) for arg in info["cmdline"] or ())
        )
        if by_env or by_path:
            found.append(proc)
    return found


def stop_strays(state: Path, timeout: float = 10.0, rounds: int = 3) -> list[str]:
    """SIGTERM every :func:`strays` process of the world under ``state``, SIGKILL those alive after
    ``timeout`` seconds; repeated (up to ``rounds`` times) for children they started meanwhile.

    :returns: ``"<pid> <command>"`` of each process stopped (empty when the world had none left).
    """
    stopped: list[str] = []
    for _ in range(rounds):
        procs = strays(state)
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
                stopped.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [proc.name()])[:120]}")
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=timeout)
    return stopped
