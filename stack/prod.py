"""The docker-compose production topology, run as plain processes (no Docker needed).

PostgreSQL (metadata DB + warehouse) and Redis (Celery broker) from Debian packages in a private
directory on 127.0.0.1, then separate ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``
and ``celery worker`` processes with the environment docker compose gives them (CeleryExecutor,
Postgres, Redis). Spark and the storage emulators are the embedded stack's. Its ports are chosen
free and recorded in ``<state>/ports.json`` (see :func:`topology`), so it never collides with a demo,
the tests' own topology or another clone.

    python -m stack.prod up|down|status
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stack import config, ports
from stack.airflow import LocalAirflow, airflow_processes
from stack.databases import PostgresServer
from stack.processes import ManagedProcess

STATE = config.STATE / "prod"  # the command line's topology; tests and benchmarks pass their own
PORT_ROLES = ("pg", "redis", "api", "log")


@dataclass(frozen=True)
class Topology:
    """One production topology: its state directory, the stack env it extends (Spark, emulators,
    lake) and its own ports (Postgres, Redis, API, worker log server), chosen free by :func:`topology`."""

    state: Path
    base: dict[str, str]
    pg_port: int
    redis_port: int
    api_port: int
    log_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, schedule: bool = True) -> dict[str, str]:
        env = dict(self.base)
        # schedule=False: only triggered runs (tests), no catch-up of the latest hour competing with them.
        env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = str(schedule)
        pg = f"postgres@127.0.0.1:{self.pg_port}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.state / "airflow"),
                "AIRFLOW_CONFIG": str(self.state / "airflow" / "airflow.cfg"),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                # The production topology keeps its triggerer (as docker-compose does): cloud backends defer there.
                "TRICLOUD_TRIGGERER": "on",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/airflow",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW_CONN_WAREHOUSE_DEFAULT": f"postgresql://{pg}/warehouse",
                "LAKE_ROOT": str(self.state / "lake"),
            }
        )
        return env

    def postgres(self) -> PostgresServer:
        return PostgresServer(self.state / "pg", self.pg_port)

    def redis(self, env: dict[str, str]) -> ManagedProcess:
        redis = shutil.which("redis-server") or "redis-server"
        cmd = [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        return ManagedProcess("redis", cmd, self.state, self.redis_port, env)

    def processes(self, env: dict[str, str]) -> list[ManagedProcess]:
        """The embedded stack's components plus a Celery worker (no log server either: one machine)."""
        worker = ["celery", "worker", "--concurrency", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], "--skip-serve-logs"]
        return [
            *airflow_processes(env, self.state, self.api_port),
            ManagedProcess("celery-worker", ["airflow", *worker], self.state, 0, env),
        ]

    def up(self, schedule: bool = True) -> dict[str, float]:
        """Start everything (idempotent); return start-up timings in seconds."""
        t0 = time.monotonic()
        env = self.env(schedule)
        self.state.mkdir(parents=True, exist_ok=True)
        postgres = self.postgres()
        postgres.start()
        for db in ("airflow", "warehouse"):
            postgres.create_database(db)
        if not shutil.which("redis-server"):
            sys.exit("Redis is not installed: apt-get install redis-server")
        self.redis(env).start(reuse=False)
        t_infra = time.monotonic() - t0
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        t_migrate = time.monotonic() - t0
        for proc in self.processes(env):
            proc.start(timeout=120, reuse=False)
        api = LocalAirflow(env)
        deadline = time.monotonic() + 180
        while not api.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"production topology not healthy after 180 s; logs in {self.state}")
            time.sleep(1)
        return {
            "infra_s": round(t_infra, 1),
            "migrate_s": round(t_migrate, 1),
            "healthy_s": round(time.monotonic() - t0, 1),
        }

    def down(self) -> None:
        env = self.env()
        for proc in self.processes(env):
            proc.stop()
        self.redis(env).stop()
        self.postgres().stop()

    def pids(self) -> list[int]:
        env = self.env()
        out = [p.pid() for p in [*self.processes(env), self.redis(env)]]
        out.append(self.postgres().pid())
        return [p for p in out if p]


def topology(state: Path = STATE, base: dict[str, str] | None = None) -> Topology:
    """The topology under ``state``, on the ports recorded in ``state/ports.json``.

    Ports are chosen free (:mod:`stack.ports`) and recorded when none are recorded, or when the
    recorded ones belong to a topology that is not running any more (they may be someone else's by
    now), so a demo, the tests and a second clone each get their own.

    :param base: the stack env to extend (default: the checkout's ``.env`` stack env).
    """
    state = Path(state)
    base = base if base is not None else config.stack_env()
    record = state / "ports.json"
    chosen: dict[str, int] = {}
    if record.exists():
        chosen = json.loads(record.read_text())
        probe = Topology(state, base, **{f"{r}_port": chosen[r] for r in PORT_ROLES})
        if probe.pids():
            return probe
    chosen = dict(zip(PORT_ROLES, ports.free_ports(len(PORT_ROLES)), strict=True))
    state.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(chosen) + "\n")
    return Topology(state, base, **{f"{r}_port": chosen[r] for r in PORT_ROLES})


def stop_recorded(state: Path, base: dict[str, str]) -> bool:
    """Stop whatever of the topology under ``state`` runs on the ports of ``state/ports.json``.

    For clean-up before ``state`` is removed (its pid files with it): unlike :func:`topology` it
    never chooses or reserves new ports. Idempotent.

    :returns: False when no ports are recorded (no topology was ever set up there), else True.
    """
    record = Path(state) / "ports.json"
    if not record.exists():
        return False
    chosen = json.loads(record.read_text())
    Topology(Path(state), base, **{f"{r}_port": chosen[r] for r in PORT_ROLES}).down()
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.prod", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    topo = topology()
    if args.command == "up":
        print(topo.up())
        print(
            f"API: {topo.api_url} (admin password in {topo.state}/airflow/simple_auth_manager_passwords.json.generated)"
        )
    elif args.command == "down":
        topo.down()
    else:
        print({"pids": topo.pids(), "api": topo.api_url})


if __name__ == "__main__":
    main()
