"""The docker-compose production topology, run as plain processes (no Docker needed).

PostgreSQL (metadata DB + warehouse) and Redis (Celery broker) from Debian packages in a private
directory on 127.0.0.1, then separate ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``
and ``celery worker`` processes with the environment docker compose gives them (CeleryExecutor,
Postgres, Redis). Spark and the storage emulators are the embedded stack's.

    python -m stack.prod up|down|status
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from stack import config
from stack.airflow import LocalAirflow, airflow_processes
from stack.databases import PostgresServer
from stack.processes import ManagedProcess

STATE = config.STATE / "prod"
PG_PORT = 5441
REDIS_PORT = 6391
API_PORT = 8081  # beside the embedded stack's 8080


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
    """The embedded stack's components plus a Celery worker (no log server either: one machine)."""
    worker = ["celery", "worker", "--concurrency", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], "--skip-serve-logs"]
    return [
        *airflow_processes(env, STATE, API_PORT),
        ManagedProcess("celery-worker", ["airflow", *worker], STATE, 0, env),
    ]


def up(schedule: bool = True) -> dict[str, float]:
    t0 = time.monotonic()
    env = prod_env(schedule)
    STATE.mkdir(parents=True, exist_ok=True)
    postgres = PostgresServer(STATE / "pg", PG_PORT)
    postgres.start()
    for db in ("airflow", "warehouse"):
        postgres.create_database(db)
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
    api = LocalAirflow({**env, "AIRFLOW_HOME": str(STATE / "airflow")})
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
    PostgresServer(STATE / "pg", PG_PORT).stop()


def pids() -> list[int]:
    env = prod_env()
    out = [p.pid() for p in processes(env)] + [ManagedProcess("redis", [], STATE, REDIS_PORT, env).pid()]
    out.append(PostgresServer(STATE / "pg", PG_PORT).pid())
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
