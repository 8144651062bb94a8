"""The docker-compose production topology, run as plain processes (no Docker needed).

PostgreSQL (metadata DB + warehouse) and Redis (Celery broker) from Debian packages in a private
directory on 127.0.0.1, then separate ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``
and ``celery worker`` processes with the environment docker compose gives them (CeleryExecutor,
Postgres, Redis). Spark and the storage emulators are the embedded stack's.

    python -m stack.prod up|down|status
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from stack import config
from stack.airflow import AirflowStandalone
from stack.processes import ManagedProcess, port_open

STATE = config.STATE / "prod"
PG_PORT = 5441
REDIS_PORT = 6391
API_PORT = 8081  # beside the embedded stack's 8080


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL is not installed: apt-get install postgresql (make stack-prod does it as root)")
    return Path(found[-1]).parent


def prod_env(schedule: bool = True) -> dict[str, str]:
    env = config.stack_env(airflow_home=STATE / "airflow")
    # schedule=False: only triggered runs (tests), no catch-up of the latest hour competing with them.
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = str(schedule)
    db = f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}/airflow"
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{PG_PORT}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "AIRFLOW__API__PORT": str(API_PORT),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{API_PORT}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{API_PORT}/execution/",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8794",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW_CONN_WAREHOUSE_DEFAULT": f"postgresql://postgres@127.0.0.1:{PG_PORT}/warehouse",
            "LAKE_ROOT": str(STATE / "lake"),
        }
    )
    return env


def processes(env: dict[str, str]) -> list[ManagedProcess]:
    def af(name: str, *args: str, port: int) -> ManagedProcess:
        return ManagedProcess(name, ["airflow", *args], STATE, port, env)

    return [
        af("api-server", "api-server", "--host", "127.0.0.1", "--port", str(API_PORT), port=API_PORT),
        af("scheduler", "scheduler", port=0),
        af("dag-processor", "dag-processor", port=0),
        af("triggerer", "triggerer", port=0),
        af("celery-worker", "celery", "worker", "--concurrency", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], port=8794),
    ]


def up(schedule: bool = True) -> dict[str, float]:
    t0 = time.monotonic()
    env = prod_env(schedule)
    STATE.mkdir(parents=True, exist_ok=True)
    pg_dir = STATE / "pg"
    run_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if not (pg_dir / "data" / "PG_VERSION").exists():
        pg_dir.mkdir(parents=True, exist_ok=True)
        if run_pg:
            shutil.chown(pg_dir, "postgres")
        subprocess.run(
            [*run_pg, str(pg_bin() / "initdb"), "-D", str(pg_dir / "data"), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
        )
    if not port_open("127.0.0.1", PG_PORT):
        subprocess.run(
            [
                *run_pg,
                str(pg_bin() / "pg_ctl"),
                "-D",
                str(pg_dir / "data"),
                "-l",
                str(pg_dir / "pg.log"),
                "-w",
                "-o",
                f"-p {PG_PORT} -k {pg_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    for db in ("airflow", "warehouse"):
        subprocess.run(
            [*run_pg, str(pg_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), db], capture_output=True
        )  # exists already on a second start
    redis = shutil.which("redis-server") or sys.exit("Redis is not installed: apt-get install redis-server")
    ManagedProcess(
        "redis",
        [redis, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        STATE,
        REDIS_PORT,
        env,
    ).start()
    t_infra = time.monotonic() - t0
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    t_migrate = time.monotonic() - t0
    for proc in processes(env):
        proc.start(timeout=120)
    api = AirflowStandalone({**env, "AIRFLOW_HOME": str(STATE / "airflow")})
    deadline = time.monotonic() + 180
    while not api.healthy():
        if time.monotonic() > deadline:
            raise TimeoutError(f"production topology not healthy after 180 s; logs in {STATE}")
        time.sleep(1)
    return {
        "infra_s": round(t_infra, 1),
        "migrate_s": round(t_migrate, 1),
        "healthy_s": round(time.monotonic() - t0, 1),
    }


def down() -> None:
    env = prod_env()
    for proc in processes(env):
        proc.stop()
    ManagedProcess("redis", [], STATE, REDIS_PORT, env).stop()
    pg_dir = STATE / "pg"
    if (pg_dir / "data").exists() and port_open("127.0.0.1", PG_PORT):
        run_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*run_pg, str(pg_bin() / "pg_ctl"), "-D", str(pg_dir / "data"), "-m", "fast", "stop"], capture_output=True
        )


def pids() -> list[int]:
    env = prod_env()
    out = [p.pid() for p in processes(env)] + [ManagedProcess("redis", [], STATE, REDIS_PORT, env).pid()]
    pg_pid = STATE / "pg" / "data" / "postmaster.pid"
    if pg_pid.exists():
        out.append(int(pg_pid.read_text().split()[0]))
    return [p for p in out if p]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.prod", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        print(up())
        print(
            f"API: http://127.0.0.1:{API_PORT} (admin password in {STATE}/airflow/simple_auth_manager_passwords.json.generated)"
        )
    elif args.command == "down":
        down()
    else:
        print({"pids": pids()})


if __name__ == "__main__":
    main()
