"""An hour whose producer broke, through Airflow (dag.test) on the real Spark cluster and emulators: the gate stops it.

A third of the raw rows get an invalid e-mail (as a producer that lost its e-mail field would send), so
``bad_email`` jumps from the usual 0.4 % to about 33 % of the hour. The ingest and enrichment run as
always (the bad rows become counted rejects); ``check_quality`` then fails, unretried, naming the check and
its numbers, and nothing of the hour reaches S3, GCS, Azure Blob or the warehouse. The normal hour passing
the gate is tests/e2e/test_customer_enrichment_dag.py (every task, the gate included, succeeds).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pendulum
import pytest

from include import generate, lake
from tests.support import reference
from tests.support.dag_test import dag_for_test

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
#: An hour no other test touches, so the shared emulators' buckets say what this run sent.
HOUR = datetime(2026, 10, 3, 7, tzinfo=UTC)
ROWS = 3000
NOT_PUBLISHED = {
    "replicate_to_s3",
    "replicate_to_gcs",
    "replicate_to_azure",
    "verify_replicas",
    "load_warehouse",
    "check_warehouse_columns",
    "check_warehouse_table",
}


def break_emails(path) -> None:
    """Every third data line loses the ``@`` of its e-mail (names and ids hold no ``@``)."""
    lines = path.read_text().split("\n")
    for i in range(1, len(lines), 3):
        lines[i] = lines[i].replace("@", " at ", 1)
    path.write_text("\n".join(lines))


@pytest.fixture(scope="module")
def broken_run(spark_cluster, emulators, tmp_path_factory):
    """(root, generated input, dag run, task instances by id, warehouse file) of the broken hour."""

    dag = dag_for_test("customer_enrichment")
    root = tmp_path_factory.mktemp("broken-producer")
    gen = generate.generate_hour(root, HOUR, rows=ROWS, products=200)
    break_emails(gen.customer_file)
    warehouse = root / "warehouse.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKE_ROOT", str(root))
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
        dr = dag.test(logical_date=pendulum.instance(HOUR).add(hours=1))
        yield root, gen, dr, {ti.task_id: ti for ti in dr.get_task_instances()}, warehouse


class TestBrokenProducer:
    def test_the_gate_fails_once_and_nothing_after_it_runs(self, broken_run):
        _, _, dr, tis, _ = broken_run
        assert dr.state == "failed"
        states = {t: ti.state for t, ti in tis.items()}
        for task_id in ("ingest_customer_data", "ingest_product_data", "enrich_customer_data", "release_hour"):
            assert states[task_id] == "success", states
        assert states["check_quality"] == "failed", states
        assert tis["check_quality"].try_number == 1  # not retried: the same data fails the same way
        assert {t: states[t] for t in NOT_PUBLISHED} == dict.fromkeys(NOT_PUBLISHED, "upstream_failed")

    def test_the_verdict_names_the_check_and_its_numbers_in_xcom_and_the_lake(self, broken_run):
        root, gen, _, tis, _ = broken_run
        _, reasons = reference.clean_customers(gen.customer_file, HOUR)
        bad = reasons["bad_email"]
        assert bad / ROWS > 0.3  # independently counted from the raw file
        verdict = tis["check_quality"].xcom_pull(task_ids="check_quality", key="quality")
        assert verdict["passed"] is False
        assert verdict["failed_checks"] == ["reject_rate.customer_activity"]
        check = next(c for c in verdict["checks"] if c["name"] == "reject_rate.customer_activity")
        assert check["observed"]["bad_email_rows"] == bad and check["observed"]["rows_in"] == ROWS
        assert f"bad_email {bad}/{ROWS} = {bad / ROWS:.2%} > 5.00%" in check["message"]
        kept = root / "_quality/customer_enrichment/date=2026-10-03/hour=07.json"
        assert verdict["path"] == str(kept)
        assert lake.read_json(kept)["checks"] == verdict["checks"]

    def test_nothing_reached_the_three_clouds_or_the_warehouse(self, broken_run):
        from include.replication import hour_prefixes
        from tricloud.replication.stores import stores_from_env

        root, _, _, _, warehouse = broken_run
        assert (lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / "part-00000.parquet").is_file()
        stores = stores_from_env()
        assert len(stores) == 3
        for store in stores:
            sent = [k for prefix in hour_prefixes(HOUR) for k in store.list_keys(prefix)]
            sent += [k for k in store.list_keys("_manifests/") if "date=2026-10-03" in k]
            assert sent == [], store.name
        assert not warehouse.exists()  # load_warehouse never ran, so nothing created the database
