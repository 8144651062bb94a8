"""The daily report on partitions, against a real Airflow scheduler (a private local Airflow).

Both paths of issue #18 §1: a day whose 24 hourly partitions of ``customer_hourly_replicated`` are in
gets exactly one report run (none before), and a re-processed hour of a reported day rebuilds that
day's report with the new numbers.

Why the events come from the REST API and the hours are written directly: 24 real pipeline hours
(Spark ingest, enrichment, three clouds, verify) would take many minutes; what is under test here is
the scheduling: that the scheduler maps our partition keys onto days, holds the run until the window
is complete, and runs the report on the day's data. ``POST /api/v2/assets/events`` takes a
``partition_key`` and goes through the same ``AssetManager.register_asset_change`` as a task's outlet
event, so the 24 events cost a few REST calls. The lake holds 24 tiny enriched partitions written
with pyarrow (the layout include/enrichment publishes), so the expected totals are computed here,
independently of the report code. What the producing tasks emit (keys, outlets, the revision
decision) is tested without a scheduler: tests/dags/test_report_schedule.py, tests/dags/
test_dag_integrity.py, tests/unit/test_reports.py.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake
from include.reports import hour_needs_revision, report_path
from tests.support.stack import private_stack, wait_for_run
from tricloud.assets import REPLICATED_CUSTOMER_HOURLY, REVISED_CUSTOMER_HOURLY, hour_partition_key

REPORT = "customer_daily_report"
DAY = datetime(2026, 10, 5, tzinfo=UTC)  # days no other test uses: the stack shares the session's lake
OTHER_DAY = DAY + timedelta(days=1)


def write_hour(root, hour: datetime, seed: int, customers: int = 3) -> int:
    """One enriched hour (parquet + summary) in the lake; returns its orders."""
    rng = random.Random(seed)
    rows = [
        {
            "customer_id": f"C{i}",
            "order_count": rng.randint(1, 5),
            "items": rng.randint(1, 9),
            "spend": round(rng.uniform(1, 100), 2),
            "favourite_category": "books",
        }
        for i in range(customers)
    ]
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, hour).path
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), part / "part-00000.parquet")
    (part / lake.SUMMARY_FILE).write_text(json.dumps({"hour": hour.isoformat(), "seed": seed}))
    return sum(r["order_count"] for r in rows)


@pytest.fixture(scope="module")
def report_stack():
    # Paused at creation: customer_enrichment must not start its own hours; only the report runs.
    with private_stack("test-report-partitions", AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True") as stack:
        client = stack[1]
        client.wait_for_dag(REPORT)
        client.call("PATCH", f"/dags/{REPORT}", {"is_paused": False})
        yield stack


def asset_id(client, asset) -> int:
    found = client.call("GET", f"/assets?name_pattern={asset.name}")["assets"]
    return next(a["id"] for a in found if a["name"] == asset.name)


def emit(client, asset, hour: datetime, attempts: int = 5) -> None:
    """What the hourly run's producing task emits for ``hour`` (extra and partition key).

    The embedded stack's metadata DB is SQLite: while the scheduler writes, the API server may answer
    500/503 "Database error"/"Database is locked" (docs/reliability.md row 8). That request's
    transaction was rolled back, so it is sent again (a duplicate would show in the consumed events)."""
    body = {"asset_id": asset_id(client, asset), "extra": {"hour": hour.isoformat()}}
    for attempt in range(attempts):
        try:
            client.call("POST", "/assets/events", body | {"partition_key": hour_partition_key(hour)})
            return
        except RuntimeError as err:
            if attempt == attempts - 1 or not ("HTTP 500" in str(err) or "HTTP 503" in str(err)):
                raise
            time.sleep(1)


def runs_of(client, day: datetime) -> list[dict]:
    runs = client.call("GET", f"/dags/{REPORT}/dagRuns?limit=100")["dag_runs"]
    return [r for r in runs if r["partition_key"] == f"{day:%Y-%m-%d}"]


def wait_for_runs(client, day: datetime, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(runs := runs_of(client, day)) < count:
        assert time.monotonic() < deadline, f"{len(runs)} report run(s) of {day:%Y-%m-%d} after {timeout:.0f}s"
        time.sleep(1)
    return runs


class TestDailyReportOnPartitions:
    def test_a_complete_day_gets_one_run_and_a_reprocessed_hour_rebuilds_it(self, report_stack):
        _, client, _, root = report_stack
        hours = [DAY + timedelta(hours=h) for h in range(24)]
        orders = {h: write_hour(root, h, seed=i) for i, h in enumerate(hours)}
        others = [OTHER_DAY + timedelta(hours=h) for h in range(24)]
        for i, h in enumerate(others):
            write_hour(root, h, seed=100 + i)

        # 23 hours of DAY, then a complete OTHER_DAY: once OTHER_DAY's run exists the scheduler has
        # evaluated DAY's older pending partition too (oldest first), and must have held it.
        for h in hours[:23]:
            emit(client, REPLICATED_CUSTOMER_HOURLY, h)
        for h in others:
            emit(client, REPLICATED_CUSTOMER_HOURLY, h)
        (other_run,) = wait_for_runs(client, OTHER_DAY, 1)
        assert wait_for_run(client, other_run["dag_run_id"], REPORT) == "success"
        assert runs_of(client, DAY) == []

        emit(client, REPLICATED_CUSTOMER_HOURLY, hours[23])
        (run,) = wait_for_runs(client, DAY, 1)
        assert run["run_type"] == "asset_triggered"
        assert wait_for_run(client, run["dag_run_id"], REPORT) == "success"
        consumed = client.call("GET", f"/dags/{REPORT}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
        assert sorted(e["partition_key"] for e in consumed["asset_events"]) == [hour_partition_key(h) for h in hours]
        report = lake.read_json(report_path(root, DAY.date()))
        assert (report["hours_processed"], report["hours_missing"]) == (24, [])
        assert report["orders"] == sum(orders.values())

        # Hour 07 is re-processed with different data; its hourly run emits the hour again, and (the
        # day being reported) as revised. The day's report is rebuilt once, with the new numbers.
        reprocessed = hours[7]
        orders[reprocessed] = write_hour(root, reprocessed, seed=999, customers=6)
        assert hour_needs_revision(root, reprocessed)
        emit(client, REPLICATED_CUSTOMER_HOURLY, reprocessed)
        emit(client, REVISED_CUSTOMER_HOURLY, reprocessed)
        rebuilt = next(r for r in wait_for_runs(client, DAY, 2) if r["dag_run_id"] != run["dag_run_id"])
        assert wait_for_run(client, rebuilt["dag_run_id"], REPORT) == "success"
        report = lake.read_json(report_path(root, DAY.date()))
        assert report["orders"] == sum(orders.values())
        assert report["by_hour"][7]["customers"] == 6
        assert not hour_needs_revision(root, reprocessed)
        assert len(runs_of(client, DAY)) == 2 and len(runs_of(client, OTHER_DAY)) == 1
