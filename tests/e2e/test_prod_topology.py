"""The production topology (Postgres + Redis + Celery, separate Airflow processes) runs an hour for real."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from include import generate

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.prod]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def prod(spark_cluster, emulators):
    import shutil

    from stack import prod

    # A fresh metadata database every time (a DAG run per logical date is unique).
    prod.down()
    shutil.rmtree(prod.STATE, ignore_errors=True)
    timings = prod.up(schedule=False)
    yield prod, timings
    prod.down()
    assert prod.pids() == []  # nothing left running


def test_one_hour_through_celery_triggered_by_rest(prod):
    import psycopg2

    from stack.airflow import LocalAirflow, RestClient

    mod, timings = prod
    env = mod.prod_env()
    generate.generate_hour(env["LAKE_ROOT"], HOUR, rows=3000, products=200)
    api = LocalAirflow({**env, "AIRFLOW_HOME": str(mod.STATE / "airflow")})
    client = RestClient(api.url, "admin", api.admin_password())
    client.wait_for_dag("customer_enrichment")
    run_id = f"prod_test_{time.time_ns()}"
    client.call(
        "POST", "/dags/customer_enrichment/dagRuns", {"dag_run_id": run_id, "logical_date": "2026-11-24T11:00:00+00:00"}
    )
    deadline = time.monotonic() + 600
    while (state := client.call("GET", f"/dags/customer_enrichment/dagRuns/{run_id}")["state"]) not in (
        "success",
        "failed",
    ):
        assert time.monotonic() < deadline, "run did not finish in 10 minutes"
        time.sleep(2)
    tis = client.call("GET", f"/dags/customer_enrichment/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tis}
    # The Celery worker ran the tasks, and load_warehouse wrote into the Postgres warehouse.
    assert {t["executor"] or "" for t in tis} <= {"", "CeleryExecutor"}
    with psycopg2.connect(f"host=127.0.0.1 port={mod.PG_PORT} user=postgres dbname=warehouse") as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM customer_hourly WHERE window_start = %s", (HOUR.isoformat(),))
        (rows,) = cur.fetchone()
    summary = client.call(
        "GET", f"/dags/customer_enrichment/dagRuns/{run_id}/taskInstances/enrich_customer_data/xcomEntries/return_value"
    )["value"]
    assert rows == summary["customers_out"] > 0
    print(f"production topology timings: {timings}")
