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

    def test_a_rejected_later_version_does_not_displace_the_clean_one(self, spark):
        """Only clean rows rank against each other: a later row of the same order with a bad e-mail is a
        ``bad_email`` reject, and the earlier clean version stays clean (not a ``duplicate``)."""
        valid = with_(quantity="2", ts="2026-11-24T10:05:00Z")
        broken = with_(quantity="9", email="not-an-address", ts="2026-11-24T10:30:00Z")
        clean, rejects = run(spark, [valid, broken])
        assert [(r["order_id"], r["quantity"]) for r in clean] == [("O1", 2)]
        assert rejects == {"O1": "bad_email"}

    def test_on_an_exact_ts_tie_the_row_further_down_the_file_wins(self, spark):
        first, second, third = (with_(quantity=q) for q in ("1", "3", "2"))  # the same ts
        clean, rejects = run(spark, [first, second, third])
        assert [r["quantity"] for r in clean] == [2]
        assert list(rejects.values()) == ["duplicate"]

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
        job.inputs.check_csv_header(path, job.RAW_COLUMNS)
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
        with pytest.raises(job.inputs.InputFormatError, match=r"schema change .*" + re.escape(message)):
            job.inputs.check_csv_header(path, job.RAW_COLUMNS)

    def test_zero_byte_file_is_a_truncated_upload(self, tmp_path):
        path = tmp_path / "activity.csv"
        path.write_bytes(b"")
        with pytest.raises(job.inputs.InputFormatError, match="empty \\(no header line\\)"):
            job.inputs.check_csv_header(path, job.RAW_COLUMNS)


H = ",".join(job.RAW_COLUMNS)


def read_file(spark, tmp_path, data: bytes):
    """The job's read path on a real file: header check, Spark extract, transform; plus the stdlib record count."""
    path = tmp_path / "activity.csv"
    path.write_bytes(data)
    job.inputs.check_csv_header(path, job.RAW_COLUMNS)
    raw = job.extract(spark, str(path))
    clean, rejects = job.transform(raw, START, END)
    python_records = sum(1 for _ in job.inputs.csv_records(path)) - 1  # minus the header
    return raw.count(), python_records, clean.collect(), rejects.collect()


class TestCsvDialect:
    """RFC 4180, as producers (Python csv, pandas, spreadsheets) write it: records, not lines."""

    def test_quoted_line_break_is_one_record(self, spark, tmp_path):
        data = (H + "\n").encode() + b'O2,C2,"Ben\nMiller",ben@example.com,DE,P00001,1,2026-11-24T10:06:00Z\n'
        spark_records, python_records, clean, rejects = read_file(spark, tmp_path, data)
        assert (spark_records, python_records) == (1, 1)
        assert [(r["order_id"], r["name"]) for r in clean] == [("O2", "Ben\nMiller")]
        assert rejects == []

    def test_doubled_quote_is_the_escape_and_backslash_is_a_character(self, spark, tmp_path):
        data = (H + "\n").encode() + (
            b'O2,C2,"Ben ""Benny"" Miller",b@x.io,DE,P1,1,2026-11-24T10:06:00Z\n'
            b'O3,C3,"Cara\\",c@x.io,DE,P1,1,2026-11-24T10:07:00Z\n'
        )
        spark_records, python_records, clean, rejects = read_file(spark, tmp_path, data)
        assert (spark_records, python_records) == (2, 2)
        assert {r["order_id"]: r["name"] for r in clean} == {"O2": 'Ben "Benny" Miller', "O3": "Cara\\"}
        assert rejects == []

    ROW = b"O1,C1,Ana,a@x.io,DE,P1,2,2026-11-24T10:05:00Z"
    ROW2 = b"O2,C1,Ana,a@x.io,DE,P1,2,2026-11-24T10:06:00Z"

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param((H + "\n").encode() + ROW + b"\n" + ROW2 + b"\n", id="lf"),
            pytest.param((H + "\r\n").encode() + ROW + b"\r\n" + ROW2 + b"\r\n", id="crlf-pandas-windows-excel"),
            pytest.param((H + "\r").encode() + ROW + b"\r" + ROW2 + b"\r", id="cr-old-mac"),
            pytest.param(b"\xef\xbb\xbf" + (H + "\r\n").encode() + ROW + b"\r\n" + ROW2 + b"\r\n", id="utf8-bom"),
            pytest.param(
                ",".join(f'"{c}"' for c in job.RAW_COLUMNS).encode() + b"\n" + ROW + b"\n" + ROW2 + b"\n",
                id="quoted-header",
            ),
            pytest.param((H + "\n").encode() + ROW + b"\n" + ROW2, id="no-final-newline"),
            pytest.param((H + "\n\n").encode() + ROW + b"\n\n" + ROW2 + b"\n\n", id="blank-lines"),
            pytest.param(
                (H + "\n").encode() + b'"O1","C1","Ana","a@x.io","DE","P1","2","2026-11-24T10:05:00Z"\n' + ROW2,
                id="every-field-quoted",
            ),
        ],
    )
    def test_accepted_dialect_variations(self, spark, tmp_path, data):
        spark_records, python_records, clean, rejects = read_file(spark, tmp_path, data)
        assert (spark_records, python_records) == (2, 2)
        assert sorted((r["order_id"], r["customer_id"], r["ts"]) for r in clean) == [
            ("O1", "C1", datetime(2026, 11, 24, 10, 5)),
            ("O2", "C1", datetime(2026, 11, 24, 10, 6)),
        ]
        assert rejects == []

    def test_header_check_reads_records_not_lines(self, tmp_path):
        path = tmp_path / "activity.csv"
        # A quoted header name holding a comma is one (wrong) column to the csv dialect, not two right ones.
        path.write_text('"order_id,customer_id",name,email,country,product_id,quantity,ts\n')
        with pytest.raises(job.inputs.InputFormatError, match=r"unexpected \['order_id,customer_id'\]"):
            job.inputs.check_csv_header(path, job.RAW_COLUMNS)


class TestTimestamps:
    """One rule (common.parse_timestamp): RFC 3339 with an offset, normalised to UTC."""

    @pytest.mark.parametrize(
        ("value", "utc"),
        [
            ("2026-11-24T10:07:00Z", datetime(2026, 11, 24, 10, 7)),
            ("2026-11-24T10:07:00+00:00", datetime(2026, 11, 24, 10, 7)),  # Python isoformat()
            ("2026-11-24T11:07:00+01:00", datetime(2026, 11, 24, 10, 7)),
            ("2026-11-24T05:07:00-05:00", datetime(2026, 11, 24, 10, 7)),
            ("2026-11-24T10:08:00.250Z", datetime(2026, 11, 24, 10, 8, 0, 250_000)),  # JavaScript toISOString()
            ("2026-11-24T10:08:00.123456789Z", datetime(2026, 11, 24, 10, 8, 0, 123_456)),  # cut to microseconds
            ("2026-11-24 10:07:00Z", datetime(2026, 11, 24, 10, 7)),  # RFC 3339 allows a space
            ("2026-11-24t10:07:00z", datetime(2026, 11, 24, 10, 7)),  # and lower case
            ("2026-11-24T11:37:00+0130", datetime(2026, 11, 24, 10, 7)),  # ISO 8601 basic offset
            ("2026-11-24T20:07:00+10", datetime(2026, 11, 24, 10, 7)),
        ],
    )
    def test_offsets_and_fractions_are_normalised_to_utc(self, spark, value, utc):
        clean, rejects = run(spark, [with_(ts=value)])
        assert rejects == {}
        assert [r["ts"] for r in clean] == [utc]

    @pytest.mark.parametrize(
        "value",
        [
            "2026-11-24T10:07:00",  # no offset: ambiguous
            "2026-11-24",
            "2026-11-24T10:07Z",
            "2026-11-24T10:07:60Z",
            "2026-11-24T10:07:00+25:00",
            "1764151620",
            "24/11/2026 10:07",
        ],
    )
    def test_anything_else_is_bad_timestamp_never_null(self, spark, value):
        clean, rejects = run(spark, [GOOD, with_(order_id="O2", ts=value)])
        assert [r["order_id"] for r in clean] == ["O1"]
        assert rejects == {"O2": "bad_timestamp"}


class TestNoSentinels:
    """``NA`` is a value (Namibia, an id, a name); only an empty field is missing."""

    def test_na_in_codes_and_names_is_kept(self, spark):
        clean, rejects = run(spark, [with_(order_id="NA", customer_id="NA", name="NA", country="NA", product_id="NA")])
        assert rejects == {}
        (row,) = clean
        assert (row["order_id"], row["customer_id"], row["name"], row["country"], row["product_id"]) == ("NA",) * 5

    def test_na_quantity_is_not_a_number(self, spark):
        _, rejects = run(spark, [with_(quantity="NA")])
        assert rejects == {"O1": "bad_quantity"}

    def test_namibia_survives_the_reader(self, spark, tmp_path):
        data = (
            H + "\n"
        ).encode() + b"O1,C1,Ana,a@x.io,NA,P1,2,2026-11-24T10:05:00Z\nO2,,Ben,b@x.io,,P1,1,2026-11-24T10:06:00Z\n"
        _, _, clean, rejects = read_file(spark, tmp_path, data)
        assert [(r["order_id"], r["country"]) for r in clean] == [("O1", "NA")]
        assert [(r["order_id"], r["reject_reason"]) for r in rejects] == [("O2", "missing_customer_id")]


class TestEverySinkCanStoreACleanRow:
    @pytest.mark.parametrize("column", ["order_id", "customer_id", "name", "email", "country", "product_id"])
    def test_nul_is_rejected_in_any_text_column(self, spark, column):
        value = {"email": "a\x00@x.io"}.get(column, "A\x00B")
        _, rejects = run(
            spark, [GOOD, with_(**{column: value}, **({} if column == "order_id" else {"order_id": "O2"}))]
        )
        assert list(rejects.values()) == ["nul_character"]

    @pytest.mark.parametrize(
        "value",
        ["Infinity", "-Infinity", "inf", "NaN", "1e999", "1e3", "2147483648", str(job.lake.MAX_QUANTITY + 1), "0"],
    )
    def test_quantity_must_be_a_bounded_integer(self, spark, value):
        _, rejects = run(spark, [GOOD, with_(order_id="O2", quantity=value)])
        assert rejects == {"O2": "bad_quantity"}

    def test_quantity_at_its_bound_is_clean(self, spark):
        clean, rejects = run(spark, [with_(quantity=str(job.lake.MAX_QUANTITY))])
        assert (rejects, [r["quantity"] for r in clean]) == ({}, [job.lake.MAX_QUANTITY])

    def test_cjk_emoji_and_length_limits_stay_clean(self, spark):
        name = "李小龍🐉" * 50  # 200 code points, 4-byte characters included: exactly MAX_LENGTH
        clean, rejects = run(spark, [with_(name=name, customer_id="C" * 32, country="ÖSTERR")])
        assert rejects == {}
        assert [(r["name"], r["customer_id"], r["country"]) for r in clean] == [(name, "C" * 32, "ÖSTERR")]
        _, rejects = run(spark, [with_(name=name + "x")])
        assert rejects == {"O1": "field_too_long"}
