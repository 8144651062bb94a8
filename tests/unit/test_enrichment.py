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


def make_hour(lake):
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


@pytest.fixture
def hour(lake):
    return make_hour(lake)


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

    def test_a_failing_enrichment_leaves_no_staging_and_publishes_nothing(self, lake):
        import duckdb

        make_hour(lake)
        orders = lake_mod.partition(lake, lake_mod.CLEAN_CUSTOMERS, HOUR).path / "part-00000.parquet"
        table = pq.read_table(orders)
        pq.write_table(table.drop_columns(["quantity"]), orders)  # the aggregate cannot be computed
        with pytest.raises(duckdb.Error, match="quantity"):
            enrich_hour(lake, HOUR)
        assert list((lake / "_staging").iterdir()) == []
        assert not lake_mod.partition(lake, lake_mod.ENRICHED_CUSTOMERS, HOUR).path.exists()
        assert not lake_mod.partition(lake, lake_mod.REJECTS_ENRICHMENT, HOUR).path.exists()


class TestPathsAreData:
    """A lake root is taken literally: never pasted into SQL, never expanded as a glob."""

    @pytest.mark.parametrize(
        "name",
        ["o'brien lake", "st*r lake?", "lake [eu] {a,b}", "100% $HOME #1 ünï; rm -rf x", 'say "hi" \\ back'],
    )
    def test_hostile_root_gives_the_same_hour(self, tmp_path, name):
        plain = enrich_hour(make_hour(tmp_path / "plain"), HOUR)
        root = make_hour(tmp_path / name)
        # A decoy that '*', '?' or '[eu]' would also match if the root were read as a pattern.
        decoy = tmp_path / name.replace("*", "X").replace("?", "Y").replace("[eu]", "e")
        if decoy != root:
            write(
                decoy,
                lake_mod.CLEAN_CUSTOMERS,
                {
                    "order_id": ["D1"],
                    "customer_id": ["C9"],
                    "name": ["x"],
                    "email": ["x@x.io"],
                    "country": ["DE"],
                    "product_id": ["P1"],
                    "quantity": [1],
                    "ts": [ts(3)],
                },
            )
            write(
                decoy,
                lake_mod.CLEAN_PRODUCTS,
                {"product_id": ["P1"], "name": ["Lamp"], "category": ["home"], "price": [10.0]},
            )
        got = enrich_hour(root, HOUR)
        strip = {"output", "rejects"}
        assert {k: v for k, v in got.items() if k not in strip} == {k: v for k, v in plain.items() if k not in strip}
        assert got["output"] == str(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path)
        published = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / "part-00000.parquet"
        plain_file = lake.partition(tmp_path / "plain", lake.ENRICHED_CUSTOMERS, HOUR).path / "part-00000.parquet"
        assert published.read_bytes() == plain_file.read_bytes()
