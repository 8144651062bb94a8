"""A private embedded stack for end-to-end tests: the local Airflow in its own home, on its own ports.

It shares the session's world (its Spark cluster, emulators and test lake, see tests/conftest.py) and
never touches a running `make demo`: its home lives in the world's state dir and its API and
log-server ports are chosen free.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack import ports, world
from stack.airflow import LocalAirflow, RestClient

DAG_ID = "customer_enrichment"


def world_state() -> Path:
    """The session's world state directory (set by tests/conftest.py)."""
    return Path(os.environ["TRICLOUD_STATE_DIR"])


def airflow_env(home: Path, **extra_env: str) -> dict[str, str]:
    """The session's environment for a second Airflow in ``home`` on free API and log-server ports."""
    api, worker_log, trigger_log = ports.free_ports(3)
    root = Path(os.environ["LAKE_ROOT"])
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__LOGGING__LOGGING_LEVEL"}
    env.update(
        {
            **world.airflow_home(home),  # its own config and metadata DB, not the session's
            "AIRFLOW__API__PORT": str(api),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log),
            "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps(
                {"conn_type": "sqlite", "host": str(root / f"{home.name}.sqlite")}
            ),
            **extra_env,
        }
    )
    return env


@contextmanager
def private_stack(name: str, **extra_env: str) -> Iterator[tuple]:
    """Yield (airflow, rest client, env, lake root) for a fresh local Airflow; stop it afterwards."""
    home = world_state() / name
    shutil.rmtree(home, ignore_errors=True)  # a fresh metadata DB: run ids and logical dates are unique
    env = airflow_env(home, **extra_env)
    airflow = LocalAirflow(env)
    try:
        airflow.start()  # inside: a start-up that fails half-way is stopped too (stop is idempotent)
        client = RestClient(airflow.url, "admin", airflow.admin_password())
        client.wait_for_dag(DAG_ID)
        yield airflow, client, env, Path(env["LAKE_ROOT"])
    finally:
        airflow.stop()
    assert airflow.pids() == []


@contextmanager
def production_stack() -> Iterator[tuple]:
    """Yield (rest client, env, lake root, start-up timings) for a fresh production topology
    (stack.prod: Postgres, Redis, Celery; scheduled runs off, only ours) in the world's state dir, on
    free ports; stop it afterwards."""
    from stack import prod

    state = world_state() / "prod"
    shutil.rmtree(state, ignore_errors=True)  # a fresh metadata DB, as above
    topo = prod.topology(state, base=dict(os.environ))
    try:
        timings = topo.up(schedule=False)  # inside: a failed start-up is taken down too (down is idempotent)
        env = topo.env(schedule=False)
        api = LocalAirflow(env)
        client = RestClient(api.url, "admin", api.admin_password())
        client.wait_for_dag(DAG_ID)
        yield client, env, Path(env["LAKE_ROOT"]), timings
    finally:
        topo.down()
    assert topo.pids() == []  # nothing left running


#: The settings of a local Airflow that runs only the runs a test triggers (no scheduled hour competing)
#: and notices a killed task's missing heartbeat within 30 s.
ONLY_OUR_RUNS = {
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
}


def warehouse_of(env: dict[str, str]) -> Path:
    """The SQLite warehouse file a private stack's ``warehouse_default`` connection points at."""
    return Path(json.loads(env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"])["host"])


def active_runs(client: RestClient) -> list[tuple[str, str, str]]:
    """(dag id, run id, state) of every run, of any DAG, still queued or running."""
    runs = client.call("GET", "/dags/~/dagRuns?state=queued&state=running&limit=100")["dag_runs"]
    return [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs]


def hand_over_idle(airflow: LocalAirflow, client: RestClient, timeout: float = 300) -> list[tuple[str, str, str]]:
    """Make a shared private stack ready for the next module: healthy, with no run queued or running.

    Restarts a stack that a test killed and did not bring back; marks failed any run a failed test left
    behind and waits until none is active, so that no module's outcome depends on what an earlier one
    left running. :returns: the runs that had been left active (empty after a clean module).
    """
    airflow.start()  # a no-op on a healthy stack
    left = active_runs(client)
    for dag_id, run_id, _ in left:
        client.call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
    deadline = time.monotonic() + timeout
    while active_runs(client):
        assert time.monotonic() < deadline, (
            f"runs still active {timeout:.0f}s after being failed: {active_runs(client)}"
        )
        time.sleep(2)
    return left


def wait_for_run(client: RestClient, run_id: str, dag_id: str = DAG_ID, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while (state := client.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state} after {timeout:.0f}s"
        time.sleep(2)
    return state


def task_states(client: RestClient, run_id: str, dag_id: str = DAG_ID) -> dict[str, str]:
    tis = client.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}
