from __future__ import annotations

from datetime import datetime

import pytest

from include.jobs import ingest_products as job


def frame(spark, rows):
    return spark.createDataFrame([(*r, None) if len(r) == 5 else (*([None] * 5), r[0]) for r in rows], job.RAW_SCHEMA)


GOOD = ("p00001", "Lamp", "Home", "12.50", "2026-11-23T10:00:00Z")


class TestCatalogClean:
    def test_good_row(self, spark):
        clean, rejects = job.transform(frame(spark, [GOOD]))
        (row,) = clean.collect()
        assert (row["product_id"], row["category"], row["price"]) == ("P00001", "home", 12.5)
        assert rejects.count() == 0

    def test_rejects_with_reasons(self, spark):
        rows = [
            GOOD,
            ("P2", "x", "toys", "free", "2026-11-23T10:00:00Z"),
            ("P3", "x", "toys", "-1", "2026-11-23T10:00:00Z"),
            (None, "x", "toys", "1", "2026-11-23T10:00:00Z"),
            ("P4", "x", None, "1", "2026-11-23T10:00:00Z"),
            ('{"product_id": "P5", "na',),
            ("P6", "L\ufffdmpe", "home", "1", "2026-11-23T10:00:00Z"),
            ("P7", "Lamp", "x" * 65, "1", "2026-11-23T10:00:00Z"),
        ]
        clean, rejects = job.transform(frame(spark, rows))
        assert [r["product_id"] for r in clean.collect()] == ["P00001"]
        reasons = sorted(r["reject_reason"] for r in rejects.collect())
        assert reasons == [
            "bad_encoding",
            "bad_price",
            "bad_price",
            "field_too_long",
            "malformed_row",
            "missing_category",
            "missing_product_id",
        ]
        assert clean.count() + rejects.count() == len(rows)

    def test_latest_updated_at_wins(self, spark):
        old = ("P00001", "Lamp", "home", "10.00", "2026-11-20T10:00:00Z")
        clean, rejects = job.transform(frame(spark, [GOOD, old]))
        assert [r["price"] for r in clean.collect()] == [12.5]
        assert [r["price"] for r in rejects.collect()] == ["10.00"]  # the raw value is kept

    def test_a_rejected_later_version_does_not_displace_the_clean_one(self, spark):
        broken = ("P00001", "Lamp", "home", "free", "2026-11-23T11:00:00Z")  # later, but bad_price
        clean, rejects = job.transform(frame(spark, [GOOD, broken]))
        assert [r["price"] for r in clean.collect()] == [12.5]
        assert [(r["price"], r["reject_reason"]) for r in rejects.collect()] == [("free", "bad_price")]

    def test_on_an_exact_updated_at_tie_the_row_further_down_the_file_wins(self, spark):
        rows = [("P00001", "Lamp", "home", p, "2026-11-23T10:00:00Z") for p in ("11.00", "13.00", "12.00")]
        clean, rejects = job.transform(frame(spark, rows))
        assert [r["price"] for r in clean.collect()] == [12.0]
        assert sorted((r["price"], r["reject_reason"]) for r in rejects.collect()) == [
            ("11.00", "duplicate"),
            ("13.00", "duplicate"),
        ]


def row(**changes):
    r = dict(zip(job.RAW_COLUMNS, GOOD, strict=True))
    r.update(changes)
    return tuple(r[c] for c in job.RAW_COLUMNS)


def reasons(spark, rows):
    clean, rejects = job.transform(frame(spark, rows))
    return [r["product_id"] for r in clean.collect()], sorted(r["reject_reason"] for r in rejects.collect())


class TestCatalogValues:
    @pytest.mark.parametrize(
        "price", ["Infinity", "-Infinity", "NaN", "1e999", "-0.01", str(job.lake.MAX_PRICE * 10), "NA", "12,50"]
    )
    def test_price_must_be_finite_and_bounded(self, spark, price):
        assert reasons(spark, [row(price=price)]) == ([], ["bad_price"])

    @pytest.mark.parametrize("price", ["0", "1e9", "12.5", "1E2"])
    def test_prices_inside_the_bounds_are_clean(self, spark, price):
        assert reasons(spark, [row(price=price)]) == (["P00001"], [])

    @pytest.mark.parametrize(
        ("updated_at", "utc"),
        [
            ("2026-11-23T11:00:00+01:00", datetime(2026, 11, 23, 10)),
            ("2026-11-23T10:00:00.5Z", datetime(2026, 11, 23, 10, 0, 0, 500_000)),
            ("2026-11-23T05:00:00-05:00", datetime(2026, 11, 23, 10)),
        ],
    )
    def test_updated_at_follows_the_one_timestamp_rule(self, spark, updated_at, utc):
        clean, _ = job.transform(frame(spark, [row(updated_at=updated_at)]))
        assert [r["updated_at"] for r in clean.collect()] == [utc]

    @pytest.mark.parametrize("updated_at", [None, "yesterday", "2026-11-23T10:00:00", "2026-11-23"])
    def test_unparseable_updated_at_is_rejected_not_null(self, spark, updated_at):
        # It decides which version of a product wins: a NULL would silently lose to any dated copy.
        assert reasons(spark, [row(updated_at=updated_at)]) == ([], ["bad_timestamp"])

    def test_na_is_a_value_in_every_text_column(self, spark):
        clean, _rejects = job.transform(frame(spark, [row(product_id="NA", name="NA", category="NA")]))
        assert [(r["product_id"], r["name"], r["category"]) for r in clean.collect()] == [("NA", "NA", "na")]

    @pytest.mark.parametrize("column", ["product_id", "name", "category"])
    def test_nul_is_rejected(self, spark, column):
        assert reasons(spark, [row(**{column: "a\x00b"})]) == ([], ["nul_character"])


class TestCatalogFile:
    """The real reader on real files (JSON Lines: one record per non-blank line)."""

    LINE = (
        b'{"product_id": "P1", "name": "Lamp", "category": "home", "price": 12.5, "updated_at": "2026-11-23T10:00:00Z"}'
    )

    def read(self, spark, tmp_path, data: bytes):
        path = tmp_path / "catalog.jsonl"
        path.write_bytes(data)
        job.inputs.check_jsonl_not_empty(path)
        raw = job.extract(spark, str(path))
        clean, rejects = job.transform(raw)
        return raw.count(), clean.collect(), rejects.collect()

    def test_a_json_array_line_is_one_malformed_row(self, spark, tmp_path):
        array = b'[{"product_id": "P2", "category": "toys", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}, {"product_id": "P3", "category": "toys", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}]'
        rows_in, clean, rejects = self.read(spark, tmp_path, self.LINE + b"\n" + array + b"\n" + b'"P4"\n42\n')
        assert rows_in == 4
        assert [r["product_id"] for r in clean] == ["P1"]
        assert sorted((r["raw_line"], r["reject_reason"]) for r in rejects) == sorted(
            [(array.decode(), "malformed_row"), ('"P4"', "malformed_row"), ("42", "malformed_row")]
        )

    def test_a_line_holding_two_objects_is_one_malformed_row_not_one_product(self, spark, tmp_path):
        # Spark's from_json parses the first object and ignores the rest: P3 was silently dropped.
        two = self.LINE.replace(b"P1", b"P2") + b" " + self.LINE.replace(b"P1", b"P3")
        nested = self.LINE.replace(b'"price"', b'"tags": ["a", {"b": "}{"}], "price"').replace(b"P1", b"P4")
        data = self.LINE + b"\n" + two + b"\n" + nested + b"\t\n\t\n"
        rows_in, clean, rejects = self.read(spark, tmp_path, data)
        assert rows_in == 3
        assert sorted(r["product_id"] for r in clean) == ["P1", "P4"]  # nested values are still one object
        assert [(r["raw_line"], r["reject_reason"]) for r in rejects] == [(two.decode(), "malformed_row")]

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(LINE + b"\r\n" + LINE.replace(b"P1", b"P2") + b"\r\n", id="crlf"),
            pytest.param(b"\xef\xbb\xbf" + LINE + b"\n" + LINE.replace(b"P1", b"P2"), id="bom-no-final-newline"),
            pytest.param(LINE + b"\n\n   \n" + LINE.replace(b"P1", b"P2") + b"\n\n", id="blank-lines"),
        ],
    )
    def test_accepted_variations(self, spark, tmp_path, data):
        rows_in, clean, rejects = self.read(spark, tmp_path, data)
        assert (rows_in, sorted(r["product_id"] for r in clean), rejects) == (2, ["P1", "P2"], [])

    def test_json_escapes_cjk_and_nul(self, spark, tmp_path):
        cjk = '{"product_id": "P2", "name": "\u6f22\u5b57 \U0001f600", "category": "books", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}'
        nul = b'{"product_id": "P3", "name": "a\\u0000b", "category": "books", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}'
        _rows_in, clean, rejects = self.read(spark, tmp_path, cjk.encode() + b"\n" + nul + b"\n")
        assert [(r["product_id"], r["name"]) for r in clean] == [("P2", "\u6f22\u5b57 \U0001f600")]
        assert [(r["product_id"], r["reject_reason"]) for r in rejects] == [("P3", "nul_character")]

    @pytest.mark.parametrize(
        "data", [b"", b"\n\n", b"  \r\n", b"\xef\xbb\xbf"], ids=["zero-byte", "newlines", "blank", "bom"]
    )
    def test_an_empty_snapshot_fails_the_hour(self, tmp_path, data):
        path = tmp_path / "catalog.jsonl"
        path.write_bytes(data)
        with pytest.raises(job.inputs.InputFormatError, match="holds no record .* a truncated upload"):
            job.inputs.check_jsonl_not_empty(path)
