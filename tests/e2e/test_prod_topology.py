"""The production topology (Postgres + Redis + Celery, separate Airflow processes), two scenarios on one stack.

One hour triggered through the REST API runs on the Celery worker and lands in the Postgres warehouse;
a backfill through the REST API with one hour's input missing. Airflow 3.3 refuses backfill creation on
SQLite under concurrent access (HTTP 503 "Database is locked"), so backfills run here. Three hours, two at a
time (``max_active_runs=2``), the one without input in the middle: every hour with input succeeds with every row once; the hour without input
fails in ingest saying which hour, publishes nothing, and is not retried (no retry can bring the input:
``tricloud.operators.spark.SPARK_RETRY_POLICY``). How the per-hour cost behaves over a whole day is a
benchmark, not a test: ``python -m bench.backfill`` (24 hours, bench/results/backfill.md).

The two share the module's stack (starting the production topology is most of a scenario's fixed cost)
but no state: other hours, other run types (the backfill counts only ``run_type=backfill`` runs).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from include import generate, lake
from tests.support.lake_checks import assert_every_row_accounted_once
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


# Three hours, the missing one in the middle: one with input runs beside it, and the one after it must
# still run (each hour is about a minute of Spark work on two cores: a fourth hour asserted nothing more).
BACKFILL_HOURS = [datetime(2026, 11, 10, h, tzinfo=UTC) for h in range(3)]
MISSING = BACKFILL_HOURS[1]
BACKFILL_ROWS = 500


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.fault
@pytest.mark.slow
def test_backfill_hours_with_input_succeed_the_missing_one_fails_at_once_saying_which(prod_stack):
    client, _, root, _ = prod_stack
    for h in BACKFILL_HOURS:
        if h != MISSING:
            generate.generate_hour(root, h, rows=BACKFILL_ROWS, products=100)
    # As `airflow backfill create --from-date … --to-date …`: logical dates are the hours' starts.
    client.call(
        "POST",
        "/backfills",
        {
            "dag_id": DAG_ID,
            "from_date": BACKFILL_HOURS[0].isoformat(),
            "to_date": BACKFILL_HOURS[-1].isoformat(),
            "max_active_runs": 2,
        },
    )
    deadline = time.monotonic() + 1500  # a hang guard, not a performance claim
    while True:
        runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
        if len(runs) == len(BACKFILL_HOURS) and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, {r["dag_run_id"]: r["state"] for r in runs}
        time.sleep(5)
    by_hour = {r["data_interval_start"]: r for r in runs}
    assert sorted(by_hour) == [_z(h) for h in BACKFILL_HOURS]

    # Only the missing hour failed, in ingest, on its first try, saying which hour had no input.
    failed = [k for k, r in by_hour.items() if r["state"] == "failed"]
    assert failed == [_z(MISSING)]
    run_id = by_hour[failed[0]]["dag_run_id"]
    ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data")
    assert ingest["state"] == "failed"
    assert ingest["try_number"] == 1, "a missing input was retried: no retry can bring it"
    log = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/logs/1")
    assert f"no input for hour {MISSING:%Y-%m-%dT%H:%M}Z" in str(log)
    # Nothing half-written for the missing hour: no clean, rejects or enriched partition.
    for dataset in lake.HOURLY_OUTPUTS:
        assert not lake.partition(root, dataset, MISSING).path.exists(), dataset

    # The others: every row once.
    for h in BACKFILL_HOURS:
        if h != MISSING:
            assert_every_row_accounted_once(root, h, BACKFILL_ROWS)
