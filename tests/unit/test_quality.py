"""The data-quality checks on tiny hand-made numbers and a tiny hand-written lake (expected values computed here)."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake, quality
from include.quality_settings import QualitySettingError, Thresholds

pytestmark = pytest.mark.fast  # the fast tier: no server (`pytest -m fast`)
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
T = Thresholds()


class TestThresholds:
    def test_defaults_without_settings(self):
        assert Thresholds.from_env({}) == Thresholds(0.05, 100, 0.2, 5.0, 6)

    def test_each_setting_overrides_its_default(self):
        env = {
            "TRICLOUD_DQ_MAX_REJECT_RATE": "0.1",
            "TRICLOUD_DQ_REJECT_MIN_ROWS": "10",
            "TRICLOUD_DQ_ROWS_MIN_RATIO": "0.5",
            "TRICLOUD_DQ_ROWS_MAX_RATIO": "2",
            "TRICLOUD_DQ_MIN_HISTORY_HOURS": "24",
            "TRICLOUD_DQ_UNRELATED": "x",
        }
        assert Thresholds.from_env(env) == Thresholds(0.1, 10, 0.5, 2.0, 24)

    def test_empty_means_default(self):
        assert Thresholds.from_env({"TRICLOUD_DQ_MAX_REJECT_RATE": " "}) == T

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("MAX_REJECT_RATE", "5%", "not a number"),
            ("MAX_REJECT_RATE", "0", "out of range"),
            ("MAX_REJECT_RATE", "1.5", "out of range"),
            ("MAX_REJECT_RATE", "nan", "out of range"),
            ("REJECT_MIN_ROWS", "2.5", "not a whole number"),
            ("REJECT_MIN_ROWS", "0", "out of range"),
            ("ROWS_MIN_RATIO", "1", "out of range"),
            ("ROWS_MIN_RATIO", "-0.1", "out of range"),
            ("ROWS_MAX_RATIO", "1", "out of range"),
            ("ROWS_MAX_RATIO", "inf", "out of range"),
            ("MIN_HISTORY_HOURS", "25", "out of range"),
        ],
    )
    def test_a_bad_value_fails_naming_the_setting(self, name, value, message):
        with pytest.raises(QualitySettingError, match=f"TRICLOUD_DQ_{name}=.*{message}.*default"):
            Thresholds.from_env({f"TRICLOUD_DQ_{name}": value})


#: Seven earlier hours, median 1000.
HISTORY = {f"h{i}": n for i, n in enumerate([900, 1000, 1100, 1000, 950, 1050, 1000])}


class TestRowVolume:
    def test_an_ordinary_hour_passes(self):
        r = quality.check_row_volume(1200, HISTORY, T)
        assert r.passed and not r.skipped
        assert r.observed["median_rows"] == statistics.median(HISTORY.values()) == 1000
        assert (r.observed["low"], r.observed["high"]) == (200, 5000)

    @pytest.mark.parametrize("rows", [199, 5001, 0])
    def test_an_hour_outside_the_range_fails_with_its_numbers(self, rows):
        r = quality.check_row_volume(rows, HISTORY, T)
        assert not r.passed
        assert f"{rows} rows outside [200, 5000]" in r.message and "median 1000 of 7 trailing hours" in r.message

    def test_too_little_history_skips_saying_why(self):
        r = quality.check_row_volume(10**9, dict(list(HISTORY.items())[:5]), T)
        assert r.passed and r.skipped
        assert r.message == "skipped: 5 of the trailing 24 hours on record, 6 needed"


class TestRejectRates:
    def test_usual_noise_passes(self):
        r = quality.check_reject_rates("customer_activity", 5000, {"bad_email": 20, "duplicate": 40}, T)
        assert r.passed and not r.skipped
        assert r.observed["bad_email_rate"] == 20 / 5000 and r.observed["duplicate_rate"] == 40 / 5000

    def test_a_spike_of_one_reason_fails_naming_it_and_its_numbers(self):
        r = quality.check_reject_rates("customer_activity", 5000, {"bad_email": 1500, "duplicate": 40}, T)
        assert not r.passed
        assert r.name == "reject_rate.customer_activity"
        assert "bad_email 1500/5000 = 30.00% > 5.00%" in r.message and "duplicate" not in r.message

    def test_exactly_at_the_threshold_passes(self):
        assert quality.check_reject_rates("x", 1000, {"bad_email": 50}, T).passed
        assert not quality.check_reject_rates("x", 1000, {"bad_email": 51}, T).passed

    def test_a_tiny_hour_is_not_judged(self):
        r = quality.check_reject_rates("product_catalog", 20, {"bad_price": 10}, T)
        assert r.passed and r.skipped and "20 input rows, 100 needed" in r.message


class TestNullKeysSpendAndCustomers:
    def test_no_null_keys_passes(self):
        assert quality.check_null_keys({"customer_activity.order_id": 0, "customer_hourly.customer_id": 0}).passed

    def test_a_null_key_fails_naming_column_and_count(self):
        r = quality.check_null_keys({"customer_activity.order_id": 0, "customer_hourly.customer_id": 3})
        assert not r.passed and r.message == "customer_hourly.customer_id has 3 NULL rows"

    def test_non_negative_spend_passes(self):
        assert quality.check_spend_non_negative(0, 0.0, 12.5).passed

    @pytest.mark.parametrize(("negative", "total"), [(1, 10.0), (0, -0.01)])
    def test_negative_spend_fails(self, negative, total):
        r = quality.check_spend_non_negative(negative, -3.0, total)
        assert not r.passed and f"{negative} customers with a negative or NULL spend" in r.message

    def test_enriched_within_clean(self):
        assert quality.check_enriched_within_clean(7, 7).passed
        r = quality.check_enriched_within_clean(8, 7)
        assert not r.passed and r.message == "8 enriched > 7 clean customers"


# -- a tiny lake written by hand ----------------------------------------------------------------------


def write_partition(root, dataset, hour, rows: list[dict] | None, summary: dict | None = None) -> None:
    part = lake.partition(root, dataset, hour).path
    part.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        pq.write_table(pa.Table.from_pylist(rows), part / "part-00000.parquet")
    if summary is not None:
        (part / lake.SUMMARY_FILE).write_text(json.dumps(summary))


ORDERS = [
    {"order_id": "O1", "customer_id": "C1", "product_id": "P1"},
    {"order_id": "O2", "customer_id": "C1", "product_id": "P2"},
    {"order_id": "O3", "customer_id": "C2", "product_id": "P1"},
    {"order_id": "O4", "customer_id": "C3", "product_id": "P9"},  # unknown product
]
PRODUCTS = [{"product_id": "P1"}, {"product_id": "P2"}]


def enriched_rows(spends: list[float | None]) -> list[dict]:
    return [
        {"customer_id": f"C{i + 1}", "window_start": HOUR, "spend": s, "order_count": 1, "items": 2}
        | {"favourite_category": "books"}
        for i, s in enumerate(spends)
    ]


def tiny_hour(root, *, rows_in=200, bad_email=2, spends=(10.0, 2.5), history=(), orders=ORDERS) -> None:
    """One hour as the jobs leave it; ``history``: rows_in of the hours before, latest first."""
    reasons = {"bad_email": bad_email, "duplicate": 1}
    upstream = {
        "customer_activity": {
            "rows_in": rows_in,
            "rows_clean": rows_in - bad_email - 1,
            "rows_rejected": bad_email + 1,
            "rejected_by_reason": reasons,
        },
        "product_catalog": {"rows_in": 2, "rows_clean": 2, "rows_rejected": 0, "rejected_by_reason": {}},
    }
    write_partition(root, lake.CLEAN_CUSTOMERS, HOUR, orders, upstream["customer_activity"])
    write_partition(root, lake.CLEAN_PRODUCTS, HOUR, PRODUCTS, upstream["product_catalog"])
    summary = {
        "orders_in": len(orders),
        "orders_rejected_unknown_product": 1,
        "customers_out": len(spends),
        "total_spend": round(sum(s or 0 for s in spends), 2),
        "upstream": upstream,
    }
    write_partition(root, lake.ENRICHED_CUSTOMERS, HOUR, enriched_rows(list(spends)), summary)
    for n, rows in enumerate(history, start=1):
        write_partition(root, lake.CLEAN_CUSTOMERS, HOUR - n * lake.HOUR, None, {"rows_in": rows})


class TestReadFacts:
    def test_the_numbers_come_from_the_hours_summaries_and_partitions(self, tmp_path):
        history = [180, 220, 200, 210, 190, 205, 199]
        tiny_hour(tmp_path, history=history)
        # an hour 25 h back is outside the trailing 24 hours
        write_partition(tmp_path, lake.CLEAN_CUSTOMERS, HOUR - timedelta(hours=25), None, {"rows_in": 1})
        facts = quality.read_facts(tmp_path, HOUR)
        assert facts.rows_in == {"customer_activity": 200, "product_catalog": 2, "customer_enrichment": 4}
        assert facts.rejected_by_reason["customer_activity"] == {"bad_email": 2, "duplicate": 1}
        assert facts.rejected_by_reason["customer_enrichment"] == {"unknown_product_id": 1}
        assert sorted(facts.history_rows.values()) == sorted(history)
        assert facts.clean_customers == len({o["customer_id"] for o in ORDERS}) == 3
        assert (facts.customers_out, facts.negative_spend_rows, facts.min_spend) == (2, 0, 2.5)
        assert set(facts.null_keys.values()) == {0}
        assert set(facts.null_keys) == {
            "customer_activity.order_id",
            "customer_activity.customer_id",
            "customer_activity.product_id",
            "product_catalog.product_id",
            "customer_hourly.customer_id",
            "customer_hourly.window_start",
        }

    def test_a_clean_hour_passes_every_check(self, tmp_path):
        tiny_hour(tmp_path, history=[200] * 6)
        result = quality.check_hour(tmp_path, HOUR, T)
        assert result.passed, result.describe()
        names = [c.name for c in result.checks]
        assert names == [
            "row_volume",
            "reject_rate.customer_activity",
            "reject_rate.customer_enrichment",
            "reject_rate.product_catalog",
            "null_keys",
            "spend_non_negative",
            "enriched_customers_le_clean",
        ]
        # product_catalog (2 rows) and customer_enrichment (4 orders) are too small to judge
        assert [c.name for c in result.checks if c.skipped] == names[2:4]

    def test_a_broken_producer_fails_the_bad_email_check_with_its_numbers(self, tmp_path):
        tiny_hour(tmp_path, rows_in=200, bad_email=60)
        result = quality.check_hour(tmp_path, HOUR, T)
        assert [c.name for c in result.failed] == ["reject_rate.customer_activity"]
        assert "bad_email 60/200 = 30.00% > 5.00%" in result.describe()

    def test_null_keys_negative_spend_and_extra_customers_fail(self, tmp_path):
        orders = [*ORDERS[:3], {"order_id": "O5", "customer_id": None, "product_id": "P1"}]
        # four enriched customers from two distinct clean ones (C1, C2; one NULL), one of them negative, one NULL
        tiny_hour(tmp_path, orders=orders, spends=(10.0, -4.0, None, 1.0))
        result = quality.check_hour(tmp_path, HOUR, T)
        failed = {c.name: c for c in result.failed}
        assert set(failed) == {"null_keys", "spend_non_negative", "enriched_customers_le_clean"}
        assert failed["null_keys"].observed["customer_activity.customer_id"] == 1
        assert failed["spend_non_negative"].observed["negative_or_null_rows"] == 2
        assert failed["enriched_customers_le_clean"].observed == {"enriched_customers": 4, "clean_customers": 2}

    def test_a_volume_drop_against_the_trailing_hours_fails(self, tmp_path):
        tiny_hour(tmp_path, rows_in=150, history=[1000] * 8)
        result = quality.check_hour(tmp_path, HOUR, T)
        assert [c.name for c in result.failed] == ["row_volume"]
        assert "150 rows outside [200, 5000]" in result.failed[0].message

    def test_an_hour_not_enriched_is_an_error_naming_the_task(self, tmp_path):
        with pytest.raises(quality.QualityInputError, match="run enrich_customer_data first"):
            quality.read_facts(tmp_path, HOUR)


class TestVerdictKept:
    def test_written_next_to_the_hour_and_read_back_for_the_day(self, tmp_path):
        tiny_hour(tmp_path, bad_email=60)
        result = quality.check_hour(tmp_path, HOUR, T)
        where = quality.write_result(tmp_path, result)
        assert where == str(tmp_path / "_quality/customer_enrichment/date=2026-11-24/hour=10.json")
        stored = lake.read_json(where)
        assert stored == json.loads(json.dumps(result.to_dict()))
        assert stored["passed"] is False and stored["failed_checks"] == ["reject_rate.customer_activity"]
        day = quality.day_summary(tmp_path, date(2026, 11, 24))
        assert day["hours_checked"] == 1 and day["hours_failed"] == ["10"] and day["hours_passed"] == []
        assert day["failed_checks"]["10"][0].startswith("reject_rate.customer_activity: bad_email 60/200")

    def test_the_daily_report_carries_the_verdicts(self, tmp_path):
        from include.reports import daily_rollup

        tiny_hour(tmp_path)
        quality.write_result(tmp_path, quality.check_hour(tmp_path, HOUR, T))
        report = daily_rollup(tmp_path, date(2026, 11, 24))
        assert report["quality"]["hours_checked"] == 1
        assert report["quality"]["hours_passed"] == ["10"] and report["quality"]["hours_failed"] == []


class TestOnAnObjectStoreLake:
    def test_the_hour_is_read_through_the_commits_and_the_verdict_kept_beside_it(self, tmp_path):
        import shutil

        from fsspec.implementations.dirfs import DirFileSystem
        from fsspec.implementations.local import LocalFileSystem
        from pyarrow import fs

        from include.lake_commit import ObjectLake

        local = tmp_path / "local"
        tiny_hour(local, bad_email=60, history=[200] * 6)
        bucket = tmp_path / "bucket"
        bucket.mkdir()
        # a bucket as a directory; like S3 (and unlike pyarrow's local file system) it needs no parent "directories"
        bucket_fs = DirFileSystem(path=str(bucket), fs=LocalFileSystem(auto_mkdir=True))
        the_lake = ObjectLake("s3://lake/prod", filesystem=fs.PyFileSystem(fs.FSSpecHandler(bucket_fs)))
        for summary in sorted(local.rglob(lake.SUMMARY_FILE)):
            part = summary.parent
            staging = tmp_path / "staging" / part.relative_to(local)
            shutil.copytree(part, staging)
            the_lake.publish(str(part.relative_to(local)), staging)

        result = quality.check_hour(the_lake, HOUR, T)
        assert result.to_dict()["checks"] == quality.check_hour(local, HOUR, T).to_dict()["checks"]
        assert [c.name for c in result.failed] == ["reject_rate.customer_activity"]
        assert quality.write_result(the_lake, result) == "s3://lake/prod/" + quality.result_relpath(HOUR)
        stored = json.loads((bucket / "lake/prod" / quality.result_relpath(HOUR)).read_text())
        assert stored["failed_checks"] == ["reject_rate.customer_activity"]
        assert quality.day_summary(the_lake, date(2026, 11, 24))["hours_failed"] == ["10"]
