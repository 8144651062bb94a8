from __future__ import annotations

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
