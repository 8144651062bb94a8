"""The whole hourly pipeline on a lake root full of characters that mean something to some layer.

customer_enrichment through Airflow (dag.test): both ingest jobs by spark-submit on the real standalone
cluster, enrichment (DuckDB), the warehouse load (SQLite, its file under the same root) and replication
to the S3, GCS and Azure emulators — then everything compared with the independent reference. A decoy
sibling that the root would match as a glob holds a different hour: reading it would change the counts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pendulum
import pytest

from include import generate, lake
from tests.support import reference

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
ROWS = 2000
#: quote, double quote, space, Hadoop glob [ ] { } * ? \, URL % and #, shell $ ; non-ASCII (':' is refused).
HOSTILE = 'o\'brien "lake" [eu] {a,b} *?\\ 100%20 $HOME;#1 ünï 東京'
DECOY = 'o\'brien "lake" e a XY 100%20 $HOME;#1 ünï 東京'  # what [eu] {a,b} *?\ would match


@pytest.fixture(scope="module")
def hostile_run(spark_cluster, emulators, tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    from stack.config import ROOT

    base = tmp_path_factory.mktemp("paths")
    root, decoy = base / HOSTILE, base / DECOY
    root.mkdir()
    generate.generate_hour(decoy, HOUR, rows=ROWS // 2, products=50, seed=99)
    gen = generate.generate_hour(root, HOUR, rows=ROWS, products=200)
    warehouse = root / "warehouse.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKE_ROOT", str(root))
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
        dag = DagBag(str(ROOT / "dags")).dags["customer_enrichment"]
        dr = dag.test(logical_date=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))
        tis = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        yield root, gen, dr, tis, warehouse


class TestHostileLakeRoot:
    def test_every_task_succeeds(self, hostile_run):
        _, _, dr, tis, _ = hostile_run
        stages = {"ingest_customer_data", "ingest_product_data", "enrich_customer_data", "load_warehouse"}
        stages |= {"replicate_to_s3", "replicate_to_gcs", "replicate_to_azure", "verify_replicas"}
        assert stages <= tis.keys()  # the whole pipeline ran, not part of it
        assert tis == {t: "success" for t in tis}, tis
        assert dr.state == "success"

    def test_outputs_match_the_reference_and_ignore_the_decoy(self, hostile_run):
        from include.paths import read_parquet_files

        root, gen, _, _, _ = hostile_run
        orders, order_reasons = reference.clean_customers(gen.customer_file, HOUR)
        products, product_reasons = reference.clean_products(gen.product_file)
        expected, unknown = reference.enrich(orders, products)

        def rows(dataset) -> list[dict]:
            part = lake.partition(root, dataset, HOUR).path
            return read_parquet_files(sorted(part.glob("*.parquet"))).to_pylist()

        assert len(rows(lake.CLEAN_CUSTOMERS)) + len(rows(lake.REJECTS_CUSTOMERS)) == ROWS
        assert len(rows(lake.CLEAN_PRODUCTS)) + len(rows(lake.REJECTS_PRODUCTS)) == gen.product_rows
        summary = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
        assert summary["upstream"]["customer_activity"]["rejected_by_reason"] == order_reasons
        assert summary["upstream"]["product_catalog"]["rejected_by_reason"] == product_reasons
        assert summary["orders_rejected_unknown_product"] == unknown
        assert summary["output"] == str(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path)
        actual = {r["customer_id"]: r for r in rows(lake.ENRICHED_CUSTOMERS)}
        assert actual.keys() == expected.keys()
        for cid, exp in expected.items():
            got = actual[cid]
            assert (got["order_count"], got["items"], got["favourite_category"]) == (
                exp["order_count"],
                exp["items"],
                exp["favourite_category"],
            ), cid
            assert got["spend"] == pytest.approx(exp["spend"], abs=0.011), cid

    def test_nothing_landed_beside_the_root(self, hostile_run):
        root = hostile_run[0]
        # e.g. SqliteHook's URI cut the path at '?' and created the database beside the lake
        assert sorted(p.name for p in root.parent.iterdir()) == sorted([HOSTILE, DECOY])

    def test_warehouse_under_the_root_holds_the_hour(self, hostile_run):
        import sqlite3

        root, _, _, _, warehouse = hostile_run
        customers = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
        with sqlite3.connect(warehouse) as con:
            (n,) = con.execute("SELECT count(*) FROM customer_hourly").fetchone()
        assert n == customers["customers_out"] > 0

    def test_replicas_equal_the_lake_in_all_three_clouds(self, hostile_run):
        from include.replication import build_manifest, read_manifest, remote_sha256
        from tricloud.replication.stores import stores_from_env

        root, _, _, _, _ = hostile_run
        local = build_manifest(root, HOUR)
        assert local["rows"]["clean/customer_activity"] + local["rows"]["rejects/customer_activity"] == ROWS
        for store in stores_from_env():
            assert read_manifest(store, HOUR) == local, store.name
            for entry in local["files"]:
                assert remote_sha256(store, entry["path"]) == entry["sha256"], (store.name, entry["path"])


class TestUnsupportedRoot:
    @pytest.mark.parametrize(
        ("char", "message"),
        [
            (":", "contains ':' at position 10: Hadoop reads 'a:b' in a path as a URI scheme"),
            ("\n", "control character U\\+000A at position 10"),
            ("\t", "control character U\\+0009"),
            ("\r", "control character U\\+000D"),
            ("\x7f", "control character U\\+007F"),
        ],
    )
    def test_is_refused_at_start_up_naming_the_character(self, char, message, monkeypatch):
        from include.jobs.common import hour_args
        from tricloud import settings

        monkeypatch.setenv("LAKE_ROOT", f"/data/lake{char}x")
        with pytest.raises(ValueError, match=message):
            settings.lake_root()  # what every task and template reads
        args = ["--lake-root", f"/data/lake{char}x", "--start", "2026-11-24T10:00Z", "--end", "2026-11-24T11:00Z"]
        with pytest.raises(ValueError, match=message):
            hour_args("job", args)  # what every Spark job reads
