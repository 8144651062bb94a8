"""The production topology (Postgres + Redis + Celery, separate Airflow processes) runs an hour for real."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from include import generate
from tests.support.stack import DAG_ID, task_states, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.prod]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_one_hour_through_celery_triggered_by_rest(prod_stack):
    import psycopg2

    client, env, root, timings = prod_stack
    generate.generate_hour(root, HOUR, rows=3000, products=200)
    run_id = f"prod_test_{time.time_ns()}"
    client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": "2026-11-24T11:00:00+00:00"})
    state = wait_for_run(client, run_id)
    assert state == "success", task_states(client, run_id)
    tis = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    # The Celery worker ran the tasks, and load_warehouse wrote into the Postgres warehouse.
    assert {t["executor"] or "" for t in tis} <= {"", "CeleryExecutor"}
    with psycopg2.connect(env["AIRFLOW_CONN_WAREHOUSE_DEFAULT"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM customer_hourly WHERE window_start = %s", (HOUR.isoformat(),))
        (rows,) = cur.fetchone()
    summary = client.call(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/enrich_customer_data/xcomEntries/return_value"
    )["value"]
    assert rows == summary["customers_out"] > 0
    print(f"production topology timings: {timings}")
