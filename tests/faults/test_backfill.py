"""A 24-hour backfill with one hour's input missing, on the production topology.

Airflow 3.3 refuses backfill creation on SQLite under concurrent access (HTTP 503 "Database is
locked"), so this runs where backfills are supported: Postgres, Celery (stack.prod). 23 hours must
succeed with every row once, the missing hour must fail saying so, and the per-hour cost stay flat.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from include import generate, lake
from tests.support.lake_checks import assert_every_row_accounted_once
from tests.support.stack import DAG_ID

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.prod, pytest.mark.fault, pytest.mark.slow]
HOURS = [datetime(2026, 11, 10, h, tzinfo=UTC) for h in range(24)]
MISSING = HOURS[13]
ROWS = 500


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.timeout(2400)  # 24 runs on 2 cores: longer than the suite's 15-minute per-test limit
def test_23_hours_succeed_the_missing_one_fails_clearly_and_cost_stays_flat(prod_stack):
    client, _, root, _ = prod_stack
    for h in HOURS:
        if h != MISSING:
            generate.generate_hour(root, h, rows=ROWS, products=100)
    # As `airflow backfill create --from-date … --to-date …`: logical dates are the hours' starts.
    backfill = client.call(
        "POST",
        "/backfills",
        {"dag_id": DAG_ID, "from_date": HOURS[0].isoformat(), "to_date": HOURS[-1].isoformat(), "max_active_runs": 2},
    )
    t0 = time.monotonic()
    deadline = t0 + 2100
    while True:
        runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
        if len(runs) == 24 and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, {r["dag_run_id"]: r["state"] for r in runs}
        time.sleep(5)
    wall = time.monotonic() - t0
    by_hour = {r["data_interval_start"]: r for r in runs}
    assert sorted(by_hour) == [_z(h) for h in HOURS]

    # Only the missing hour failed, in ingest, saying which hour had no input.
    failed = [k for k, r in by_hour.items() if r["state"] == "failed"]
    assert failed == [_z(MISSING)]
    run_id = by_hour[failed[0]]["dag_run_id"]
    ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data")
    assert ingest["state"] == "failed"
    log = client.call(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/logs/{ingest['try_number']}"
    )
    assert "no input for hour 2026-11-10T13:00Z" in str(log)
    assert not lake.partition(root, lake.CLEAN_CUSTOMERS, MISSING).path.exists()

    # The other 23: every row once.
    for h in HOURS:
        if h != MISSING:
            assert_every_row_accounted_once(root, h, ROWS)

    # Per-hour cost stays flat: the last hours take no longer than the first ones.
    durations = [
        (datetime.fromisoformat(r["end_date"]) - datetime.fromisoformat(r["start_date"])).total_seconds()
        for _, r in sorted(by_hour.items())
        if r["state"] == "success"
    ]
    first, last = sorted(durations[:6])[3], sorted(durations[-6:])[3]
    print(
        f"backfill {backfill['id']}: 24 runs in {wall:.0f}s; per-hour seconds median of first six {first:.0f}, "
        f"last six {last:.0f}, min {min(durations):.0f}, max {max(durations):.0f}"
    )
    assert last <= 1.5 * first + 10
    assert timedelta(seconds=max(durations)) < timedelta(minutes=5)
