"""A private embedded stack for end-to-end tests: the local Airflow in its own home, on its own ports.

It shares the session's Spark cluster, emulators and test lake, and never touches a running
`make demo` (other API and log-server ports, another metadata DB).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack import config
from stack.airflow import LocalAirflow, RestClient

DAG_ID = "customer_enrichment"


@contextmanager
def private_stack(name: str, api_port: int, log_port: int, **extra_env: str) -> Iterator[tuple]:
    """Yield (airflow, rest client, env, lake root) for a fresh local Airflow; stop it afterwards."""
    home = config.STATE / name
    shutil.rmtree(home, ignore_errors=True)  # a fresh metadata DB: run ids and logical dates are unique
    root = Path(os.environ["LAKE_ROOT"])
    env = config.stack_env(
        airflow_home=home,
        overrides={
            "AIRFLOW__API__PORT": str(api_port),
            "LAKE_ROOT": str(root),
            "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(root / f"{name}.sqlite")}),
        },
    )
    env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(log_port)
    env.update(extra_env)
    airflow = LocalAirflow(env)
    airflow.start()
    try:
        client = RestClient(airflow.url, "admin", airflow.admin_password())
        client.wait_for_dag(DAG_ID)
        yield airflow, client, env, root
    finally:
        airflow.stop()
    assert airflow.pids() == []


@contextmanager
def production_stack() -> Iterator[tuple]:
    """Yield (rest client, env, lake root, start-up timings) for a fresh production topology
    (stack.prod: Postgres, Redis, Celery; scheduled runs off, only ours); stop it afterwards."""
    from stack import prod

    prod.down()
    shutil.rmtree(prod.STATE, ignore_errors=True)  # a fresh metadata DB, as above
    timings = prod.up(schedule=False)
    try:
        env = prod.prod_env(schedule=False)
        api = LocalAirflow({**env, "AIRFLOW_HOME": str(prod.STATE / "airflow")})
        client = RestClient(api.url, "admin", api.admin_password())
        client.wait_for_dag(DAG_ID)
        yield client, env, Path(env["LAKE_ROOT"]), timings
    finally:
        prod.down()
    assert prod.pids() == []  # nothing left running


def wait_for_run(client: RestClient, run_id: str, dag_id: str = DAG_ID, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while (state := client.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state} after {timeout:.0f}s"
        time.sleep(2)
    return state


def task_states(client: RestClient, run_id: str, dag_id: str = DAG_ID) -> dict[str, str]:
    tis = client.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}
