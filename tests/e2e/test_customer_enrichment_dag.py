"""One hour of customer_enrichment through Airflow (dag.test) on the real Spark cluster."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pendulum
import pytest

from include import generate, lake
from tests.support import reference

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
ROWS = 5000


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


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    from stack.config import ROOT

    return DagBag(str(ROOT / "dags")).dags["customer_enrichment"]


@pytest.fixture(scope="module")
def first_run(dag, spark_cluster, emulators, tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    # This module's own lake for its tests; the session's LAKE_ROOT is back once the module is done.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKE_ROOT", str(root))
        gen = generate.generate_hour(root, HOUR, rows=ROWS, products=300)
        dr = run_hour(dag)
        yield root, gen, dr


class TestOneHour:
    def test_run_succeeds_with_a_one_hour_interval(self, first_run):
        _, _, dr = first_run
        assert dr.state == "success"
        assert dr.data_interval_end - dr.data_interval_start == pendulum.duration(hours=1)
        assert dr.data_interval_start == pendulum.datetime(2026, 11, 24, 10, tz="UTC")

    def test_cleaned_plus_rejected_equals_input(self, first_run):
        import duckdb

        root, gen, _ = first_run

        def count(dataset):
            return duckdb.execute(
                f"SELECT count(*) FROM '{lake.partition(root, dataset, HOUR).path}/*.parquet'"
            ).fetchone()[0]

        assert count(lake.CLEAN_CUSTOMERS) + count(lake.REJECTS_CUSTOMERS) == ROWS
        assert count(lake.CLEAN_PRODUCTS) + count(lake.REJECTS_PRODUCTS) == gen.product_rows
        rejects_without_reason = duckdb.execute(
            f"SELECT count(*) FROM '{lake.partition(root, lake.REJECTS_CUSTOMERS, HOUR).path}/*.parquet' "
            "WHERE reject_reason IS NULL"
        ).fetchone()[0]
        assert rejects_without_reason == 0

    def test_matches_an_independent_computation_from_the_raw_files(self, first_run):
        import duckdb

        root, gen, _ = first_run
        orders, order_reasons = reference.clean_customers(gen.customer_file, HOUR)
        products, product_reasons = reference.clean_products(gen.product_file)
        expected, unknown = reference.enrich(orders, products)

        summary = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
        assert summary["upstream"]["customer_activity"]["rejected_by_reason"] == order_reasons
        assert summary["upstream"]["product_catalog"]["rejected_by_reason"] == product_reasons
        assert summary["orders_rejected_unknown_product"] == unknown

        rows = duckdb.execute(
            "SELECT customer_id, order_count, items, spend, favourite_category "
            f"FROM '{lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path}/*.parquet'"
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

        root, _, _ = first_run
        local = build_manifest(root, HOUR)
        assert local["rows"]["clean/customer_activity"] + local["rows"]["rejects/customer_activity"] == ROWS
        for store in stores_from_env():
            assert read_manifest(store, HOUR) == local, store.name
            for entry in local["files"]:
                assert remote_sha256(store, entry["path"]) == entry["sha256"], (store.name, entry["path"])

    def test_rerun_gives_identical_outputs(self, first_run, dag):
        root, _, _ = first_run
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

        root, _, _ = first_run
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
