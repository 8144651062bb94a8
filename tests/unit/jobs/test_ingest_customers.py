from __future__ import annotations

import re
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
            # What Spark reads for invalid UTF-8 bytes: U+FFFD, never silently kept as clean.
            (with_(order_id="O2", name="An\ufffd\ufffda"), "bad_encoding"),
            (with_(order_id="O2", name="x" * 1_000_000), "field_too_long"),
            (with_(order_id="O2", country="GERMANY-WEST"), "field_too_long"),
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


class TestReadShell:
    """The real reader on real files: what bytes on disk become (extract + transform, as the job runs)."""

    HEADER = ",".join(job.RAW_COLUMNS) + "\n"

    def read(self, spark, tmp_path, data: bytes):
        path = tmp_path / "activity.csv"
        path.write_bytes(data)
        job.common.check_csv_header(path, job.RAW_COLUMNS)
        clean, rejects = job.transform(job.extract(spark, str(path)), START, END)
        return [r["order_id"] for r in clean.collect()], sorted(r["reject_reason"] for r in rejects.collect())

    def test_bad_bytes_wrong_counts_and_a_huge_field_are_counted_rejects(self, spark, tmp_path):
        good = ",".join(GOOD).encode() + b"\n"
        lines = [
            good,
            b"O2,C1,An\xff\xfea,a@x.io,de,P1,2,2026-11-24T10:05:00Z\n",  # Latin-1 bytes
            b"O3,C1,Ana,a@x.io,de,P1,2,2026-11-24T10:05:00Z,EXTRA\n",  # one column too many
            b"O4,C1,Ana\n",  # too few
            b"O5,C1," + b"x" * 1_000_000 + b",a@x.io,de,P1,2,2026-11-24T10:05:00Z\n",
            b"O6,C1,Ana,a@x.io,de,P1,-3,2026-11-24T10:05:00Z\n",
        ]
        clean, reasons = self.read(spark, tmp_path, self.HEADER.encode() + b"".join(lines))
        assert clean == ["O1"]
        assert reasons == ["bad_encoding", "bad_quantity", "field_too_long", "malformed_row", "malformed_row"]

    def test_an_hour_without_activity_is_empty_not_an_error(self, spark, tmp_path):
        assert self.read(spark, tmp_path, self.HEADER.encode()) == ([], [])

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("order_id,customer_id,name,email,country,product_id,quantity,ts,coupon", "unexpected ['coupon']"),
            ("order_id,customer_id,name,email,product_id,quantity,ts", "missing ['country']"),
            ("order_id,customer_id,full_name,email,country,product_id,quantity,ts", "missing ['name'], unexpected"),
        ],
    )
    def test_schema_change_fails_the_hour_naming_the_columns(self, tmp_path, header, message):
        path = tmp_path / "activity.csv"
        path.write_text(header + "\nO1,C1,Ana,a@x.io,de,P1,2,2026-11-24T10:05:00Z\n")
        with pytest.raises(job.common.InputFormatError, match=r"schema change .*" + re.escape(message)):
            job.common.check_csv_header(path, job.RAW_COLUMNS)

    def test_zero_byte_file_is_a_truncated_upload(self, tmp_path):
        path = tmp_path / "activity.csv"
        path.write_bytes(b"")
        with pytest.raises(job.common.InputFormatError, match="empty \\(no header line\\)"):
            job.common.check_csv_header(path, job.RAW_COLUMNS)
