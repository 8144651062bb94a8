"""One hour of customer_enrichment through Airflow (dag.test) on the real Spark cluster, on a hostile lake root.

One scenario, one hour run (each full hour is about a minute of Spark work on two cores; this module and
the hostile-root module used to run one each): both ingest jobs by spark-submit on the standalone cluster,
enrichment (DuckDB), the warehouse load (SQLite, its file under the same root) and replication to the S3,
GCS and Azure emulators, on a lake root full of characters that mean something to some layer. A decoy
sibling that the root would match as a glob holds a different hour: reading it would change the counts.
Then, in this order (pytest runs a module's tests in file order): the checks that only read the hour, a
re-run of the hour (byte-identical, nothing sent again), and a restore of the wiped lake from one cloud.
The first run also emits OpenLineage events (the provider's http transport) to a receiver on 127.0.0.1:
TestLineage joins them into the hour's graph.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pendulum
import pytest

from include import generate, lake
from tests.support import reference
from tests.support.dag_test import dag_for_test
from tests.support.enrichment_tasks import DATA_TASKS
from tests.support.lineage_receiver import lineage_receiver, openlineage_on

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
ROWS = 5000
#: quote, double quote, space, Hadoop glob [ ] { } * ? \, URL % and #, shell $ ; non-ASCII (':' is refused).
HOSTILE = 'o\'brien "lake" [eu] {a,b} *?\\ 100%20 $HOME;#1 ünï 東京'
DECOY = 'o\'brien "lake" e a XY 100%20 $HOME;#1 ünï 東京'  # what [eu] {a,b} *?\ would match


def run_hour(dag):
    # A manual run's interval ends at its logical date: 11:00 processes [10:00, 11:00).
    return dag.test(logical_date=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))


def output_digests(root) -> dict[str, str]:
    files = {}
    for dataset in lake.HOURLY_OUTPUTS:
        part = lake.partition(root, dataset, HOUR).path
        for f in sorted(part.rglob("*")):
            if f.is_file():
                files[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def parquet_files(root, dataset) -> list[str]:
    """The partition's Parquet files, listed here and handed to DuckDB as data (the root is no glob or SQL)."""
    files = sorted(str(f) for f in lake.partition(root, dataset, HOUR).path.glob("*.parquet"))
    assert files, dataset
    return files


@pytest.fixture(scope="module")
def dag():
    return dag_for_test("customer_enrichment")


@pytest.fixture(scope="module")
def lineage():
    """An OpenLineage receiver on 127.0.0.1 (what the first run's events were sent to)."""
    with lineage_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def first_run(dag, spark_cluster, emulators, tmp_path_factory, lineage):
    """(root, generated input, dag run, task states, warehouse) of the module's one hour."""
    base = tmp_path_factory.mktemp("paths")
    root, decoy = base / HOSTILE, base / DECOY
    root.mkdir()
    generate.generate_hour(decoy, HOUR, rows=ROWS // 2, products=50, seed=99)
    gen = generate.generate_hour(root, HOUR, rows=ROWS, products=300)
    warehouse = root / "warehouse.sqlite"
    # This module's own lake and warehouse; the session's are back once the module is done.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKE_ROOT", str(root))
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
        with openlineage_on(mp, lineage.transport()):  # this run only
            dr = run_hour(dag)
        tis = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        yield root, gen, dr, tis, warehouse


class TestHostileLakeRoot:
    def test_every_task_succeeds(self, first_run):
        _, _, dr, tis, _ = first_run
        stages = {"ingest_customer_data", "ingest_product_data", "enrich_customer_data", "load_warehouse"}
        stages |= {"replicate_to_s3", "replicate_to_gcs", "replicate_to_azure", "verify_replicas"}
        stages |= {"check_quality", "check_warehouse_columns", "check_warehouse_table"}  # the quality gates
        assert stages <= tis.keys()  # the whole pipeline ran, not part of it
        # The day has no report yet, so there is nothing to revise: that task skips (emits no event).
        assert tis == {t: "success" for t in tis} | {"revise_daily_report": "skipped"}, tis
        assert dr.state == "success"

    def test_outputs_match_the_reference_and_ignore_the_decoy(self, first_run):
        from include.paths import read_parquet_files

        root, gen, _, _, _ = first_run
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

    def test_the_ordinary_hour_passes_the_quality_gate(self, first_run, dag):
        root, gen, dr, _, _ = first_run
        ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "check_quality")
        verdict = ti.xcom_pull(task_ids="check_quality", key="quality")
        assert verdict["passed"] is True and verdict["failed_checks"] == []
        assert verdict == ti.xcom_pull(task_ids="check_quality")  # pushed under its key and returned
        _, reasons = reference.clean_customers(gen.customer_file, HOUR)
        check = next(c for c in verdict["checks"] if c["name"] == "reject_rate.customer_activity")
        assert check["observed"]["bad_email_rows"] == reasons["bad_email"] > 0
        # no earlier hour in this lake: the volume check is skipped, saying why
        volume = next(c for c in verdict["checks"] if c["name"] == "row_volume")
        assert volume["skipped"] and volume["message"] == "skipped: 0 of the trailing 24 hours on record, 6 needed"
        kept = lake.read_json(root / "_quality/customer_enrichment/date=2026-11-24/hour=10.json")
        assert kept["passed"] is True and kept["checks"] == verdict["checks"]

    def test_nothing_landed_beside_the_root(self, first_run):
        root = first_run[0]
        # e.g. SqliteHook's URI cut the path at '?' and created the database beside the lake
        assert sorted(p.name for p in root.parent.iterdir()) == sorted([HOSTILE, DECOY])

    def test_warehouse_under_the_root_holds_the_hour(self, first_run):
        import sqlite3

        root, _, _, _, warehouse = first_run
        customers = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
        with sqlite3.connect(warehouse) as con:
            (n,) = con.execute("SELECT count(*) FROM customer_hourly").fetchone()
        assert n == customers["customers_out"] > 0

    def test_replica_keys_are_relative_to_the_root_whatever_it_holds(self, first_run):
        # (the replicas' bytes: TestOneHour::test_replicas_equal_the_lake_in_all_three_clouds)
        from include.replication import build_manifest, hour_prefixes
        from tricloud.replication.stores import stores_from_env

        root, _, _, _, _ = first_run
        wanted = {entry["path"] for entry in build_manifest(root, HOUR)["files"]}
        assert wanted and not [p for p in wanted if "brien" in p]
        for store in stores_from_env():
            keys = {k for prefix in hour_prefixes(HOUR) for k in store.list_keys(prefix)}
            assert wanted <= keys, (store.name, wanted - keys)
            # nowhere in the bucket a key carrying a piece of the root (quoted, escaped or cut at a glob character)
            assert [k for k in store.list_keys("") if "brien" in k] == [], store.name


class TestLineage:
    """The first run's OpenLineage events, as the receiver on 127.0.0.1 got them, joined by dataset name."""

    DATA_TASKS = DATA_TASKS  # tests/support/enrichment_tasks.py

    @staticmethod
    def task_edges(lineage) -> dict[tuple[tuple[str, str], tuple[str, str]], str]:
        """{(input, output): task} over every task's COMPLETE event; a dataset is (namespace, name)."""
        edges = {}
        for job, event in lineage.complete_events("customer_enrichment.").items():
            for i in event["inputs"]:
                for o in event["outputs"]:
                    edges[(i["namespace"], i["name"]), (o["namespace"], o["name"])] = job.split(".", 1)[1]
        return edges

    def test_every_data_task_sent_a_start_and_a_complete_event(self, first_run, lineage):
        sent = {(e["job"]["name"], e["eventType"]) for e in lineage.events}
        for task in self.DATA_TASKS:
            assert {(f"customer_enrichment.{task}", "START"), (f"customer_enrichment.{task}", "COMPLETE")} <= sent
        assert set(lineage.paths) == {"/api/v1/lineage"}

    def test_the_hours_events_form_the_graph_raw_clean_enriched_then_clouds_and_warehouse(self, first_run, lineage):
        import os

        root, _, _, _, warehouse = first_run
        part = f"date={HOUR:%Y-%m-%d}/hour={HOUR:%H}"
        bucket = os.environ["REPLICA_BUCKET"]
        raw_orders = ("file", f"{root}/raw/customer_activity/{part}/activity.csv")
        raw_catalog = ("file", f"{root}/raw/product_catalog/{part}/catalog.jsonl")
        clean_orders = ("file", f"{root}/clean/customer_activity/{part}")
        clean_catalog = ("file", f"{root}/clean/product_catalog/{part}")
        enriched = ("file", f"{root}/enriched/customer_hourly/{part}")
        clouds = [
            (ns, f"enriched/customer_hourly/{part}")
            for ns in (f"s3://{bucket}", f"gs://{bucket}", f"wasbs://{bucket}@devstoreaccount1")
        ]
        table = (f"sqlite://{warehouse}", "main.customer_hourly")
        edges = self.task_edges(lineage)
        expected = {
            (raw_orders, clean_orders): "ingest_customer_data",
            (raw_catalog, clean_catalog): "ingest_product_data",
            (clean_orders, enriched): "enrich_customer_data",
            (clean_catalog, enriched): "enrich_customer_data",
            (enriched, clouds[0]): "replicate_to_s3",
            (enriched, clouds[1]): "replicate_to_gcs",
            (enriched, clouds[2]): "replicate_to_azure",
            (enriched, table): "load_warehouse",
        }
        assert {e: edges.get(e) for e in expected} == expected
        # Joined by name, the raw files reach all three clouds and the warehouse.
        reached, frontier = set(), {raw_orders, raw_catalog}
        while frontier:
            reached |= frontier
            frontier = {o for (i, o) in edges if i in frontier} - reached
        assert set(clouds) | {table} <= reached
        # verify_replicas read the three copies back
        verify = lineage.complete_events("customer_enrichment.verify_replicas")
        read = {(d["namespace"], d["name"]) for e in verify.values() for d in e["inputs"]}
        assert set(clouds) <= read


class TestOneHour:
    def test_run_succeeds_with_a_one_hour_interval(self, first_run):
        _, _, dr, _, _ = first_run
        assert dr.state == "success"
        assert dr.data_interval_end - dr.data_interval_start == pendulum.duration(hours=1)
        assert dr.data_interval_start == pendulum.datetime(2026, 11, 24, 10, tz="UTC")

    def test_cleaned_plus_rejected_equals_input(self, first_run):
        import duckdb

        root, gen, _, _, _ = first_run

        def count(dataset):
            return duckdb.execute("SELECT count(*) FROM read_parquet(?)", [parquet_files(root, dataset)]).fetchone()[0]

        assert count(lake.CLEAN_CUSTOMERS) + count(lake.REJECTS_CUSTOMERS) == ROWS
        assert count(lake.CLEAN_PRODUCTS) + count(lake.REJECTS_PRODUCTS) == gen.product_rows
        rejects_without_reason = duckdb.execute(
            "SELECT count(*) FROM read_parquet(?) WHERE reject_reason IS NULL",
            [parquet_files(root, lake.REJECTS_CUSTOMERS)],
        ).fetchone()[0]
        assert rejects_without_reason == 0

    def test_matches_an_independent_computation_from_the_raw_files(self, first_run):
        import duckdb

        root, gen, _, _, _ = first_run
        orders, order_reasons = reference.clean_customers(gen.customer_file, HOUR)
        products, product_reasons = reference.clean_products(gen.product_file)
        expected, unknown = reference.enrich(orders, products)

        summary = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
        assert summary["upstream"]["customer_activity"]["rejected_by_reason"] == order_reasons
        assert summary["upstream"]["product_catalog"]["rejected_by_reason"] == product_reasons
        assert summary["orders_rejected_unknown_product"] == unknown

        rows = duckdb.execute(
            "SELECT customer_id, order_count, items, spend, favourite_category FROM read_parquet(?)",
            [parquet_files(root, lake.ENRICHED_CUSTOMERS)],
        ).fetchall()
        actual = {r[0]: {"order_count": r[1], "items": r[2], "spend": r[3], "favourite_category": r[4]} for r in rows}
        assert actual.keys() == expected.keys()
        for cid, exp in expected.items():
            got = actual[cid]
            assert (got["order_count"], got["items"], got["favourite_category"]) == (
                exp["order_count"],
                exp["items"],
                exp["favourite_category"],
            ), cid
            assert got["spend"] == pytest.approx(exp["spend"], abs=0.011), cid

    def test_replicas_equal_the_lake_in_all_three_clouds(self, first_run):
        from include.replication import build_manifest, read_manifest, remote_sha256
        from tricloud.replication.stores import stores_from_env

        root, _, _, _, _ = first_run
        local = build_manifest(root, HOUR)
        assert local["rows"]["clean/customer_activity"] + local["rows"]["rejects/customer_activity"] == ROWS
        for store in stores_from_env():
            assert read_manifest(store, HOUR) == local, store.name
            for entry in local["files"]:
                assert remote_sha256(store, entry["path"]) == entry["sha256"], (store.name, entry["path"])

    def test_rerun_gives_identical_outputs(self, first_run, dag):
        root, _, _, _, _ = first_run
        before = output_digests(root)
        # A stale file in a partition must disappear: a re-run replaces the hour, it does not add to it.
        stale = lake.partition(root, lake.CLEAN_CUSTOMERS, HOUR).path / "part-00099.parquet"
        stale.write_bytes(b"stale")
        dr = run_hour(dag)
        assert dr.state == "success"
        assert output_digests(root) == before
        assert not list((root / "_staging").iterdir())
        # ... and, the hour being unchanged, replication sent nothing the second time.
        tis = {ti.task_id: ti for ti in dr.get_task_instances()}
        for cloud in ("s3", "gcs", "azure"):
            sent = tis[f"replicate_to_{cloud}"].xcom_pull(task_ids=f"replicate_to_{cloud}")
            assert sent["bytes_uploaded"] == 0, (cloud, sent)


class TestRestoreLakeDag:
    @pytest.fixture(scope="class")
    def restore_dag(self):
        from airflow.dag_processing.dagbag import DagBag

        from stack.config import ROOT

        return DagBag(str(ROOT / "dags")).dags["restore_lake"]

    def test_bad_params_fail_before_anything_runs(self, restore_dag):
        from airflow.sdk.definitions.param import ParamValidationError

        with pytest.raises(ParamValidationError, match="dropbox"):
            restore_dag.test(
                run_conf={
                    "source": "dropbox",
                    "start_hour": "2026-11-24T10:00:00+00:00",
                    "end_hour": "2026-11-24T10:00:00+00:00",
                }
            )

    def test_wiped_lake_is_restored_byte_identical_from_one_cloud(self, first_run, restore_dag):
        import shutil

        root, _, _, _, _ = first_run
        before = output_digests(root)
        for zone in ("clean", "rejects", "enriched", "_manifests"):
            shutil.rmtree(root / zone)
        dr = restore_dag.test(
            run_conf={
                "source": "gcs",
                "target": "local",
                "start_hour": "2026-11-24T10:00:00+00:00",
                "end_hour": "2026-11-24T10:00:00+00:00",
            }
        )
        assert dr.state == "success"
        assert output_digests(root) == before


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
