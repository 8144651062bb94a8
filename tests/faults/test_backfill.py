"""A backfill through the REST API on the production topology, one hour's input missing.

Airflow 3.3 refuses backfill creation on SQLite under concurrent access (HTTP 503 "Database is
locked"), so this runs where backfills are supported: Postgres, Celery (stack.prod). Four hours, two at
a time (``max_active_runs=2``): every hour with input succeeds with every row once; the hour without
input fails in ingest saying which hour, publishes nothing, and is not retried (no retry can bring the
input: ``tricloud.operators.spark.SPARK_RETRY_POLICY``). How the per-hour cost behaves over a whole day
is a benchmark, not a test: ``python -m bench.backfill`` (24 hours, bench/results/backfill.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from include import generate, lake
from tests.support.lake_checks import assert_every_row_accounted_once
from tests.support.stack import DAG_ID

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.prod, pytest.mark.fault, pytest.mark.slow]
HOURS = [datetime(2026, 11, 10, h, tzinfo=UTC) for h in range(4)]
MISSING = HOURS[2]  # in the middle: the hours after it must still run
ROWS = 500


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_hours_with_input_succeed_the_missing_one_fails_at_once_saying_which(prod_stack):
    client, _, root, _ = prod_stack
    for h in HOURS:
        if h != MISSING:
            generate.generate_hour(root, h, rows=ROWS, products=100)
    # As `airflow backfill create --from-date … --to-date …`: logical dates are the hours' starts.
    client.call(
        "POST",
        "/backfills",
        {"dag_id": DAG_ID, "from_date": HOURS[0].isoformat(), "to_date": HOURS[-1].isoformat(), "max_active_runs": 2},
    )
    deadline = time.monotonic() + 1500  # a hang guard, not a performance claim
    while True:
        runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
        if len(runs) == len(HOURS) and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, {r["dag_run_id"]: r["state"] for r in runs}
        time.sleep(5)
    by_hour = {r["data_interval_start"]: r for r in runs}
    assert sorted(by_hour) == [_z(h) for h in HOURS]

    # Only the missing hour failed, in ingest, on its first try, saying which hour had no input.
    failed = [k for k, r in by_hour.items() if r["state"] == "failed"]
    assert failed == [_z(MISSING)]
    run_id = by_hour[failed[0]]["dag_run_id"]
    ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data")
    assert ingest["state"] == "failed"
    assert ingest["try_number"] == 1, "a missing input was retried: no retry can bring it"
    log = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/logs/1")
    assert "no input for hour 2026-11-10T02:00Z" in str(log)
    # Nothing half-written for the missing hour: no clean, rejects or enriched partition.
    for dataset in lake.HOURLY_OUTPUTS:
        assert not lake.partition(root, dataset, MISSING).path.exists(), dataset

    # The others: every row once.
    for h in HOURS:
        if h != MISSING:
            assert_every_row_accounted_once(root, h, ROWS)
