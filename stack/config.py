"""The stack's environment, built once from ``.env`` for the stack, the tests and the CLI."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from include.paths import check_lake_root

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
ENV_EXAMPLE = ROOT / ".env.example"
STATE = ROOT / ".stack"
VENV_BIN = Path(sys.executable).parent


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def ensure_env_file() -> Path:
    if not ENV_FILE.exists():
        secret = f"\nAIRFLOW_JWT_SECRET={secrets.token_hex(32)}\n"
        text = ENV_EXAMPLE.read_text().replace("\nAIRFLOW_JWT_SECRET=\n", secret)
        ENV_FILE.write_text(text)
        ENV_FILE.chmod(0o600)
        print(f"Wrote {ENV_FILE.name} from {ENV_EXAMPLE.name} (local emulator defaults)", file=sys.stderr)
    return ENV_FILE


def _secret(name: str, state: Path = STATE) -> str:
    """A random secret generated once per checkout and kept out of git (in ``state``, default .stack/)."""
    path = state / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def stack_env(
    airflow_home: Path | None = None,
    env_file: Path | None = None,
    overrides: dict[str, str] | None = None,
    state: Path = STATE,
) -> dict[str, str]:
    """Variables for every process of the stack: .env values plus the derived Airflow settings.

    ``overrides`` replace .env values before anything is derived from them (e.g. a second stack's
    API port, from which the execution API URL follows). ``env_file`` (default: the checkout's
    ``.env``, written from ``.env.example`` when missing) and ``state`` (default: ``.stack/``, where
    the generated secrets are kept; the Airflow home is ``state/airflow`` unless ``airflow_home``)
    let a test use neither.
    """
    values = parse_env_file(env_file or ensure_env_file())
    # A value already exported by the user wins over .env, as with docker compose.
    values = {k: os.environ.get(k, v) for k, v in values.items()} | (overrides or {})
    lake = Path(values.get("LAKE_ROOT", "./lake"))
    lake = lake if lake.is_absolute() else (ROOT / lake).resolve()
    check_lake_root(lake)  # before anything starts: names a character some layer cannot take
    derived = derived_settings(
        values,
        home=airflow_home or state / "airflow",
        state=state,
        lake=lake,
        jwt_secret=values.get("AIRFLOW_JWT_SECRET") or _secret("jwt_secret", state),
        fernet_key=_fernet_key(state),
    )
    return {**values, **_absolute_sqlite(values), **derived}


#: Airflow and Spark settings of every embedded stack (demo, tests, benchmarks, production topology) that
#: cut Airflow's scheduling latency and the stack's memory. A value in ``.env`` (or the shell) wins.
#: Measured by ``python -m bench.hour_profile`` (bench/results/airflow_latency.md, stack_memory.md): one
#: 100k-row hour with these settings against Airflow's and Spark's defaults, same machine, same run.
LEAN_SETTINGS: dict[str, str] = {
    # The scheduler sleeps this long after a loop with nothing to do (default 1 s); a finished task's
    # downstream is queued by the next loop, so each stage waited up to a second for it.
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    # The task supervisor waits in select() up to this many seconds between checks (default 5). A task
    # process that closed its sockets and then exits is noticed only at the next check: a skipped task's
    # end (recorded on exit) came ~5 s late, and each finished task held its executor slot that long,
    # so the next stage's tasks waited for a slot. 1 s (an integer setting): a heartbeat a second per
    # running task, a few light API calls.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    # ... and a task is killed after this many heartbeats failed in a row (default 3): at 1 s apart that is
    # ~3 s of an unreachable API server or a locked SQLite DB instead of ~15 s. 15 keeps the old tolerance.
    "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS": "15",
    # Five DAG files: one parsing process (default 2) is enough and one Python process fewer.
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    # Spark master and worker: a 128 MiB heap cap (Spark's default SPARK_DAEMON_MEMORY is 1g; they hold a
    # few MiB of state), a 16 MiB young generation and a small initial heap (the JVM default is 1/64 of
    # RAM, 384 MiB here), the serial GC and the C1 compiler only.
    "SPARK_DAEMON_MEMORY": "128m",
    "SPARK_DAEMON_JAVA_OPTS": "-Xms32m -Xmn16m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=32m",
    # spark-submit drivers (client mode, one JVM per job) and the Spark Connect server: 512 MiB heap cap
    # (Spark's default 1g; a job's spark.driver.memory still wins), small initial heap and a 64 MiB young
    # generation (the JVM's resident heap is what eden ever touched plus the live old generation).
    "SPARK_DRIVER_MEMORY": "512m",
    "SPARK_SUBMIT_OPTS": "-Xms32m -Xmn64m -XX:ReservedCodeCacheSize=64m",
    # glibc gives each thread that mallocs its own 64 MiB arena (up to 8 per core); the threaded processes
    # (api-server, scheduler, triggerer, the JVMs' native side) leave pages resident in each. Two arenas.
    "MALLOC_ARENA_MAX": "2",
    # The triggerer runs only for deferred tasks; no task of the embedded stack defers (the local backend
    # has no trigger, [operators] default_deferrable is off), so it is not started: ~220 MiB, two processes.
    # `on` starts it (and `default_deferrable` true does too): stack.airflow.wants_triggerer.
    "TRICLOUD_TRIGGERER": "auto",
}


def derived_settings(
    values: dict[str, str], *, home: Path, state: Path, lake: Path, jwt_secret: str, fernet_key: str
) -> dict[str, str]:
    """The settings every stack derives from its values: Airflow's URLs, folders, secrets, paths."""
    api_port = values.get("AIRFLOW__API__PORT", "8080")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # One secret for every component, or each makes its own and tasks fail with "Invalid auth token".
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "LAKE_ROOT": str(lake),
        "TRICLOUD_STATE_DIR": str(state),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "PYSPARK_PYTHON": sys.executable,
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
        **{k: v for k, v in LEAN_SETTINGS.items() if k not in values},
    }


def _absolute_sqlite(values: dict[str, str]) -> dict[str, str]:
    """A SQLite connection with a relative path, made absolute (processes run in other directories)."""
    import json

    out = {}
    for key, value in values.items():
        if key.startswith("AIRFLOW_CONN_") and value.startswith("{"):
            conn = json.loads(value)
            if conn.get("conn_type") == "sqlite" and conn.get("host") and not conn["host"].startswith("/"):
                conn["host"] = str((ROOT / conn["host"]).resolve())
                out[key] = json.dumps(conn)
    return out


def _fernet_key(state: Path = STATE) -> str:
    path = state / "secrets" / "fernet_key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def apply(env: dict[str, str]) -> None:
    os.environ.update(env)
