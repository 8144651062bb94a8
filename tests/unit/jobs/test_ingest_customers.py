from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.jobs import ingest_customers as job

START = datetime(2026, 11, 24, 10, tzinfo=UTC)
END = datetime(2026, 11, 24, 11, tzinfo=UTC)
GOOD = ["O1", "C1", "Ana Lopez", "ana@example.com", "de", "p00001", "2", "2026-11-24T10:05:00Z"]


def frame(spark, rows):
    data = [(*r, None) if len(r) == 8 else (*([None] * 8), r[0]) for r in rows]
    return spark.createDataFrame(data, job.RAW_SCHEMA)


def run(spark, rows):
    clean, rejects = job.transform(frame(spark, rows), START, END)
    return clean.collect(), {r["order_id"] or r["raw_line"]: r["reject_reason"] for r in rejects.collect()}


def with_(**changes):
    row = list(GOOD)
    for key, value in changes.items():
        row[job.RAW_COLUMNS.index(key)] = value
    return row


class TestCleanRules:
    def test_good_row_is_typed_and_normalised(self, spark):
        clean, rejects = run(spark, [with_(email="  Ana@Example.COM ")])
        assert rejects == {}
        (row,) = clean
        assert row["email"] == "ana@example.com"
        assert row["country"] == "DE"
        assert row["product_id"] == "P00001"
        assert row["quantity"] == 2
        assert row["ts"] == datetime(2026, 11, 24, 10, 5)  # session time zone is UTC

    @pytest.mark.parametrize(
        ("row", "reason"),
        [
            (with_(order_id="O2", customer_id=None), "missing_customer_id"),
            (with_(order_id="O2", email="ana_at_example.com"), "bad_email"),
            (with_(order_id="O2", quantity="three"), "bad_quantity"),
            (with_(order_id="O2", quantity=None), "bad_quantity"),
            (with_(order_id="O2", quantity="-2"), "bad_quantity"),
            (with_(order_id="O2", quantity="2.5"), "bad_quantity"),
            (with_(order_id="O2", ts="yesterday"), "bad_timestamp"),
            (with_(order_id="O2", ts="2026-11-24T09:59:59Z"), "outside_interval"),
            (with_(order_id="O2", ts="2026-11-24T11:00:00Z"), "outside_interval"),
            (with_(order_id="O2", product_id="  "), "missing_product_id"),
        ],
    )
    def test_each_rule_rejects_with_its_reason(self, spark, row, reason):
        clean, rejects = run(spark, [GOOD, row])
        assert [r["order_id"] for r in clean] == ["O1"]
        assert rejects == {"O2": reason}

    def test_missing_order_id_and_malformed_line(self, spark):
        clean, rejects = run(spark, [GOOD, with_(order_id=None), ["O9,C9,extra,fields,too,many,x,y,z"]])
        assert len(clean) == 1
        assert sorted(rejects.values()) == ["malformed_row", "missing_order_id"]

    def test_first_failing_rule_wins(self, spark):
        _, rejects = run(spark, [with_(customer_id=None, email="bad", quantity="x")])
        assert rejects == {"O1": "missing_customer_id"}


class TestDedupe:
    def test_latest_version_wins_and_older_is_rejected(self, spark):
        older = with_(quantity="1", ts="2026-11-24T10:01:00Z")
        newer = with_(quantity="4", ts="2026-11-24T10:30:00Z")
        clean, rejects = run(spark, [newer, older])
        assert [(r["order_id"], r["quantity"]) for r in clean] == [("O1", 4)]
        assert rejects == {"O1": "duplicate"}

    def test_exact_duplicates_keep_one(self, spark):
        clean, rejects = run(spark, [GOOD, GOOD, GOOD])
        assert len(clean) == 1
        assert list(rejects.values()) == ["duplicate"]  # keyed by order id: both copies share it

    def test_accounting_clean_plus_rejected_equals_input(self, spark):
        rows = [GOOD, GOOD, with_(order_id="O2", email="x"), with_(order_id="O3"), ["garbage,line"]]
        clean, rejects = job.transform(frame(spark, rows), START, END)
        assert clean.count() + rejects.count() == len(rows)
        assert rejects.where("reject_reason IS NULL").count() == 0
