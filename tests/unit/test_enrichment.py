from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake
from include.enrichment import MissingInputError, enrich_hour

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def ts(minute: int) -> datetime:
    return datetime(2026, 11, 24, 10, minute, tzinfo=UTC)


def write(root, dataset, table: dict) -> None:
    path = lake.partition(root, dataset, HOUR).path
    path.mkdir(parents=True)
    pq.write_table(pa.table(table), path / "part-00000.parquet")


@pytest.fixture
def hour(lake):
    write(
        lake,
        lake_mod.CLEAN_CUSTOMERS,
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5"],
            "customer_id": ["C1", "C1", "C1", "C2", "C2"],
            "name": ["Ana", "Ana", "Ana B", "Ben", "Ben"],
            "email": ["a@x.io", "a@x.io", "ab@x.io", "b@x.io", "b@x.io"],
            "country": ["DE", "DE", "FR", "US", "US"],
            "product_id": ["P1", "P2", "P2", "P1", "P9"],
            "quantity": [1, 2, 1, 3, 1],
            "ts": [ts(5), ts(10), ts(50), ts(1), ts(2)],
        },
    )
    write(
        lake,
        lake_mod.CLEAN_PRODUCTS,
        {"product_id": ["P1", "P2"], "name": ["Lamp", "Book"], "category": ["home", "books"], "price": [10.0, 4.5]},
    )
    return lake


lake_mod = lake


class TestEnrichHour:
    def test_join_and_aggregate(self, hour):
        import duckdb

        summary = enrich_hour(hour, HOUR)
        out = duckdb.sql(f"SELECT * FROM '{summary['output']}/*.parquet' ORDER BY customer_id").fetchall()
        cols = [d[0] for d in duckdb.sql(f"SELECT * FROM '{summary['output']}/*.parquet'").description]
        rows = [dict(zip(cols, r, strict=True)) for r in out]
        c1, c2 = rows
        # C1: P1 x1 (10.0 home) + P2 x2 (9.0 books) + P2 x1 (4.5 books) -> books 13.5 beats home 10.0
        assert (c1["order_count"], c1["items"], c1["spend"], c1["favourite_category"]) == (3, 4, 23.5, "books")
        assert (c1["name"], c1["country"]) == ("Ana B", "FR")  # profile of the latest order
        # C2: P9 is not in the catalog -> rejected, only O4 counts
        assert (c2["order_count"], c2["spend"], c2["favourite_category"]) == (1, 30.0, "home")
        assert summary["orders_in"] == 5
        assert summary["orders_joined"] == 4
        assert summary["orders_rejected_unknown_product"] == 1
        rej = duckdb.sql(f"SELECT order_id, reject_reason FROM '{summary['rejects']}/*.parquet'").fetchall()
        assert rej == [("O5", "unknown_product_id")]

    def test_rerun_is_byte_identical(self, hour):
        first = enrich_hour(hour, HOUR)
        data = (lake.partition(hour, lake.ENRICHED_CUSTOMERS, HOUR).path / "part-00000.parquet").read_bytes()
        second = enrich_hour(hour, HOUR)
        assert first == second
        assert (lake.partition(hour, lake.ENRICHED_CUSTOMERS, HOUR).path / "part-00000.parquet").read_bytes() == data
        assert not list((hour / "_staging").iterdir())

    def test_missing_catalog_is_a_clear_error(self, lake):
        write(lake, lake_mod.CLEAN_CUSTOMERS, {"order_id": ["O1"]})
        with pytest.raises(MissingInputError, match="no clean product_catalog for hour 2026-11-24T10:00Z"):
            enrich_hour(lake, HOUR)
