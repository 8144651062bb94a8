"""The daily rollup against enriched partitions written by hand (expected values computed in Python)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from include import lake
from include.reports import daily_rollup, days_of, hour_needs_revision, report_path

DAY = date(2026, 11, 24)


def write_hour(root, hour: int, rows: list[dict]) -> None:
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, datetime(2026, 11, 24, hour, tzinfo=UTC)).path
    part.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), part / "part-00000.parquet")


def customers(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "customer_id": f"C{i}",
            "order_count": rng.randint(1, 5),
            "items": rng.randint(1, 9),
            "spend": round(rng.uniform(1, 500), 2),
            "favourite_category": rng.choice(["books", "garden", "toys"]),
        }
        for i in range(n)
    ]


class TestDailyRollup:
    def test_totals_per_hour_and_day_and_missing_hours(self, tmp_path):
        hours = {3: customers(40, 1), 17: customers(25, 2)}
        for h, rows in hours.items():
            write_hour(tmp_path, h, rows)
        # another day must not leak in
        part = lake.partition(tmp_path, lake.ENRICHED_CUSTOMERS, datetime(2026, 11, 25, 0, tzinfo=UTC)).path
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(customers(7, 3)), part / "part-00000.parquet")

        report = daily_rollup(tmp_path, DAY)

        every = [r for rows in hours.values() for r in rows]
        assert report["hours_processed"] == 2
        assert report["hours_missing"] == [f"{h:02d}" for h in range(24) if h not in hours]
        assert report["orders"] == sum(r["order_count"] for r in every)
        assert report["customer_hours"] == 65
        assert abs(report["spend"] - sum(r["spend"] for r in every)) < 0.01
        assert [h["hour"] for h in report["by_hour"]] == ["03", "17"]
        assert report["by_hour"][1]["items"] == sum(r["items"] for r in hours[17])
        favourites = {}
        for r in every:
            favourites[r["favourite_category"]] = favourites.get(r["favourite_category"], 0) + 1
        assert {c["category"]: c["customers"] for c in report["top_favourite_categories"]} == favourites
        assert json.loads(report_path(tmp_path, DAY).read_text())["orders"] == report["orders"]

    def test_a_day_without_hours_reports_all_missing(self, tmp_path):
        report = daily_rollup(tmp_path, "2026-11-24")
        assert (report["hours_processed"], len(report["hours_missing"]), report["spend"]) == (0, 24, 0)

    def test_days_of_hours(self):
        assert days_of(["2026-11-24T23:00:00+00:00", "2026-11-25T00:00:00Z", "2026-11-24T01:00:00Z"]) == [
            date(2026, 11, 24),
            date(2026, 11, 25),
        ]


class TestPathsAreData:
    def test_a_root_with_glob_characters_reads_only_its_own_hours(self, tmp_path):
        root, decoy = tmp_path / "o'brien st*r lake?", tmp_path / "o'brien stXr lakeY"
        write_hour(root, 3, customers(4, 1))
        write_hour(decoy, 3, customers(9, 2))  # what '*' and '?' would also match
        write_hour(decoy, 5, customers(9, 3))
        report = daily_rollup(root, DAY)
        assert report["hours_processed"] == 1
        assert report["customer_hours"] == 4
        assert report["orders"] == sum(r["order_count"] for r in customers(4, 1))


def publish_summary(root, hour: int, content: dict) -> None:
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, datetime(2026, 11, 24, hour, tzinfo=UTC)).path
    (part / lake.SUMMARY_FILE).write_text(json.dumps(content))


class TestHourNeedsRevision:
    """Whether a replicated hour must rebuild its day's report (customer_enrichment.revise_daily_report)."""

    def hour(self, h: int) -> str:
        return datetime(2026, 11, 24, h, tzinfo=UTC).isoformat()

    def test_no_report_yet_is_the_partition_schedules_job(self, tmp_path):
        write_hour(tmp_path, 3, customers(4, 1))
        publish_summary(tmp_path, 3, {"run": 1})
        assert not hour_needs_revision(tmp_path, self.hour(3))

    def test_the_hour_the_report_already_shows_is_not_revised(self, tmp_path):
        for h in (3, 4):
            write_hour(tmp_path, h, customers(4, h))
            publish_summary(tmp_path, h, {"run": 1})
        daily_rollup(tmp_path, DAY)
        assert not hour_needs_revision(tmp_path, self.hour(4))

    def test_a_reprocessed_hour_is_revised(self, tmp_path):
        write_hour(tmp_path, 3, customers(4, 1))
        publish_summary(tmp_path, 3, {"run": 1})
        daily_rollup(tmp_path, DAY)
        publish_summary(tmp_path, 3, {"run": 2})  # the hour's re-run rewrote its summary
        assert hour_needs_revision(tmp_path, self.hour(3))
        daily_rollup(tmp_path, DAY)
        assert not hour_needs_revision(tmp_path, self.hour(3))

    def test_a_late_hour_of_a_reported_day_is_revised(self, tmp_path):
        write_hour(tmp_path, 3, customers(4, 1))
        publish_summary(tmp_path, 3, {"run": 1})
        daily_rollup(tmp_path, DAY)  # reported with hour 05 missing
        write_hour(tmp_path, 5, customers(4, 5))
        publish_summary(tmp_path, 5, {"run": 1})
        assert hour_needs_revision(tmp_path, self.hour(5))
        assert not hour_needs_revision(tmp_path, self.hour(3))

    def test_an_object_store_lake_has_no_report_to_revise(self):
        # The report refuses such a lake (TestLocalOnlyFeatures...); the hourly run must not fail on it.
        assert not hour_needs_revision("s3://bucket/lake", self.hour(3))
