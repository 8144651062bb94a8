"""The OpenLineage datasets each task of customer_enrichment reports (tricloud.lineage + the facet methods).

Names are checked against the OpenLineage naming spec (spec/Naming.md, "Dataset Naming") written out
here by hand, not recomputed with the helpers under test. The emitted events of a real hour, joined into
the graph raw -> clean -> enriched -> {three clouds, warehouse}, are checked by
tests/e2e/test_customer_enrichment_dag.py::TestLineage.
"""

from __future__ import annotations

import json
import os

import pytest

from tricloud.lineage import location, spark_job_lineage
from tricloud.operators import (
    EnrichHourOperator,
    LoadWarehouseOperator,
    ReplicateHourOperator,
    SparkJobOperator,
    VerifyReplicasOperator,
)

pytestmark = pytest.mark.fast
HOUR = "2026-11-24T10:00:00+00:00"
PART = "date=2026-11-24/hour=10"
BUCKET = "lineage-bucket"
#: Azurite's well-known account (a connection string only: building the client touches no network).
WASB = {
    "conn_type": "wasb",
    "extra": {
        "connection_string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
    },
}
#: Every partition an hour publishes (include.lake.HOURLY_OUTPUTS), as the spec's {path} under the lake.
HOUR_PARTITIONS = [
    f"clean/customer_activity/{PART}",
    f"rejects/customer_activity/{PART}",
    f"clean/product_catalog/{PART}",
    f"rejects/product_catalog/{PART}",
    f"rejects/customer_enrichment/{PART}",
    f"enriched/customer_hourly/{PART}",
]


def names(datasets) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


@pytest.fixture
def clouds(monkeypatch):
    monkeypatch.setenv("REPLICA_BUCKET", BUCKET)
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(WASB))


class TestLocation:
    def test_a_local_path_is_namespace_file_and_its_absolute_path_taken_literally(self, tmp_path):
        odd = tmp_path / "o'brien [eu] {a,b} *? 100%20 #1 東京"
        assert names([location(f"{odd}//clean/x/")]) == [("file", f"{odd}/clean/x")]

    def test_a_relative_path_is_made_absolute(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        assert names([location("lake/raw")]) == [("file", f"{tmp_path}/lake/raw")]

    def test_an_object_uri_splits_into_bucket_namespace_and_key_name(self):
        assert names([location("s3://lake-bucket/prefix/clean/x")]) == [("s3://lake-bucket", "prefix/clean/x")]


class TestSparkJob:
    def test_input_and_the_two_outputs_come_from_the_metrics_the_job_wrote(self, tmp_path):
        metrics = {
            "input": f"{tmp_path}/raw/customer_activity/{PART}/activity.csv",
            "output": f"{tmp_path}/clean/customer_activity/{PART}",
            "rejects": f"{tmp_path}/rejects/customer_activity/{PART}",
            "rows_in": 10,
        }
        got = spark_job_lineage(metrics)
        assert names(got.inputs) == [("file", f"{tmp_path}/raw/customer_activity/{PART}/activity.csv")]
        assert names(got.outputs) == [
            ("file", f"{tmp_path}/clean/customer_activity/{PART}"),
            ("file", f"{tmp_path}/rejects/customer_activity/{PART}"),
        ]

    def test_a_job_without_metrics_reports_no_dataset(self):
        op = SparkJobOperator(task_id="ingest", application="/nowhere/job.py")
        assert op.get_openlineage_facets_on_start().inputs == []
        failed = op.get_openlineage_facets_on_failure(None)
        assert (failed.inputs, failed.outputs) == ([], [])


class TestEnrich:
    def test_clean_partitions_in_enriched_and_its_rejects_out(self, tmp_path):
        op = EnrichHourOperator(task_id="enrich", hour=HOUR, lake_root=str(tmp_path))
        got = op.get_openlineage_facets_on_complete(None)
        assert names(got.inputs) == [
            ("file", f"{tmp_path}/clean/customer_activity/{PART}"),
            ("file", f"{tmp_path}/clean/product_catalog/{PART}"),
        ]
        assert names(got.outputs) == [
            ("file", f"{tmp_path}/enriched/customer_hourly/{PART}"),
            ("file", f"{tmp_path}/rejects/customer_enrichment/{PART}"),
        ]

    def test_an_object_store_lake_names_its_bucket(self):
        op = EnrichHourOperator(task_id="enrich", hour=HOUR, lake_root="s3://lake-bucket/prefix/")
        assert names(op.get_openlineage_facets_on_start().outputs)[0] == (
            "s3://lake-bucket",
            f"prefix/enriched/customer_hourly/{PART}",
        )


class TestReplicate:
    @pytest.mark.parametrize(
        ("cloud", "namespace"),
        [("s3", f"s3://{BUCKET}"), ("gcs", f"gs://{BUCKET}"), ("azure", f"wasbs://{BUCKET}@devstoreaccount1")],
    )
    def test_the_hours_lake_partitions_in_the_same_keys_in_the_cloud_out(self, clouds, tmp_path, cloud, namespace):
        op = ReplicateHourOperator(task_id=f"replicate_to_{cloud}", cloud=cloud, hour=HOUR, lake_root=str(tmp_path))
        for got in (op.get_openlineage_facets_on_start(), op.get_openlineage_facets_on_complete(None)):
            assert names(got.inputs) == [("file", f"{tmp_path}/{p}") for p in HOUR_PARTITIONS]
            assert names(got.outputs) == [(namespace, p) for p in HOUR_PARTITIONS]

    def test_the_cloud_holding_the_primary_lake_reports_nothing(self, clouds):
        op = ReplicateHourOperator(task_id="replicate_to_s3", cloud="s3", hour=HOUR, lake_root="s3://lake-bucket/p")
        got = op.get_openlineage_facets_on_start()
        assert (got.inputs, got.outputs) == ([], [])


class TestVerify:
    def test_reads_every_clouds_copy_of_the_hour(self, clouds, tmp_path):
        op = VerifyReplicasOperator(task_id="verify_replicas", hour=HOUR, lake_root=str(tmp_path))
        got = op.get_openlineage_facets_on_complete(None)
        expected = [
            (ns, p)
            for ns in (f"s3://{BUCKET}", f"gs://{BUCKET}", f"wasbs://{BUCKET}@devstoreaccount1")
            for p in HOUR_PARTITIONS
        ]
        assert names(got.inputs) == expected
        assert got.outputs == []  # nothing repaired

    def test_an_s3_lake_leaves_s3_out(self, clouds):
        op = VerifyReplicasOperator(task_id="verify_replicas", hour=HOUR, lake_root="s3://lake-bucket/p")
        namespaces = {ns for ns, _ in names(op.get_openlineage_facets_on_start().inputs)}
        assert namespaces == {f"gs://{BUCKET}", f"wasbs://{BUCKET}@devstoreaccount1"}


class TestLoadWarehouse:
    @pytest.mark.parametrize(
        ("conn", "table"),
        [
            (
                {"conn_type": "postgres", "host": "db.example", "port": 5433, "schema": "dw"},
                "dw.public.customer_hourly",
            ),
            ({"conn_type": "postgres", "host": "db.example", "schema": "dw"}, "dw.public.customer_hourly"),
            ({"conn_type": "mysql", "host": "db.example", "port": 3307, "schema": "dw"}, "dw.customer_hourly"),
        ],
        ids=["postgres", "postgres-default-port", "mysql"],
    )
    def test_a_server_warehouse_is_named_by_its_host_port_and_database(self, monkeypatch, tmp_path, conn, table):
        monkeypatch.setenv("AIRFLOW_CONN_DW", json.dumps(conn))
        op = LoadWarehouseOperator(task_id="load_warehouse", hour=HOUR, lake_root=str(tmp_path), conn_id="dw")
        got = op.get_openlineage_facets_on_complete(None)
        port = conn.get("port", 5432)
        assert names(got.inputs) == [("file", f"{tmp_path}/enriched/customer_hourly/{PART}")]
        assert names(got.outputs) == [(f"{conn['conn_type']}://db.example:{port}", table)]

    def test_sqlite_is_named_by_its_database_file(self, monkeypatch, tmp_path):
        db = tmp_path / "w h#1" / "warehouse.sqlite"
        monkeypatch.setenv("AIRFLOW_CONN_DW", json.dumps({"conn_type": "sqlite", "host": str(db)}))
        op = LoadWarehouseOperator(task_id="load_warehouse", hour=HOUR, lake_root=str(tmp_path), conn_id="dw")
        assert names(op.get_openlineage_facets_on_start().outputs) == [(f"sqlite://{db}", "main.customer_hourly")]

    def test_an_unsupported_connection_says_which_types_work(self, monkeypatch, tmp_path):
        monkeypatch.setenv("AIRFLOW_CONN_DW", json.dumps({"conn_type": "http", "host": "x"}))
        op = LoadWarehouseOperator(task_id="load_warehouse", hour=HOUR, lake_root=str(tmp_path), conn_id="dw")
        with pytest.raises(ValueError, match="expected one of"):
            op.get_openlineage_facets_on_start()


def test_lineage_is_off_without_a_transport(monkeypatch):
    """No transport configured: the provider disables itself (no listener, nothing called, nothing sent)."""
    from airflow.providers.openlineage import conf

    for key in [k for k in os.environ if "OPENLINEAGE" in k]:
        monkeypatch.delenv(key)
    assert conf.is_disabled()
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))
    assert not conf.is_disabled()
