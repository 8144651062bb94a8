"""customer_enrichment, unchanged, on ``dataproc`` and ``dataproc-serverless`` with ``LAKE_ROOT=gs://…``.

The DAG file is the one every deployment runs; only configuration differs (``TRICLOUD_CLUSTER_BACKEND``,
``TRICLOUD_GCS_CODE_URI`` and ``LAKE_ROOT`` on GCS, the google connection's ``api_endpoint`` pointing at the
Dataproc fake). Airflow runs the hour with ``dag.test`` (one process, as tests/e2e/test_customer_enrichment_on_emr.py).
Control plane: tests/support/dataproc_fake.py (Dataproc REST v1, the real google-cloud-dataproc client);
the jobs and batches are run by :class:`tests.support.dataproc_runner.EmulatedDataproc`, which fetches the
staged code from GCS and runs the spark-submit here with staged object-store I/O (no GCS connector here:
the one difference from Dataproc). The lake is on the GCS emulator of tests/support/gcs_preconditions.py
(gcp-storage-emulator plus GCS's 412 for ``ifGenerationMatch=0``, which the hour lease needs and the
stock emulator ignores); the replicas go to the world's S3 and Azure emulators (GCS holds the lake).

Checked independently: rows from the generated CSV (tests/support/reference.py) against the committed
objects, every replica's SHA-256 read back, and the jobs or batches counted at the fake.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pendulum
import pytest

from include import generate, lake
from tests.support import reference
from tests.support.dag_test import dag_for_test
from tests.support.dataproc_fake import fake_dataproc
from tests.support.dataproc_runner import EmulatedDataproc
from tests.support.gcs_preconditions import gcs_with_preconditions

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
ROWS = 300
SPARK_JOBS = ("ingest_customer_data", "ingest_product_data")
PROJECT, REGION, CONN_ID = "tricloud-test", "europe-west1", "gcp_dataproc_e2e"


@pytest.fixture(scope="module")
def dataproc():
    with fake_dataproc() as fake:
        yield fake


@pytest.fixture(scope="module")
def gcs_lake_endpoint():
    """The module's GCS (with preconditions) as ``STORAGE_EMULATOR_HOST`` for every GCS client (restored after)."""
    with gcs_with_preconditions() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", endpoint)
        yield endpoint


@pytest.fixture(scope="module", params=["dataproc", "dataproc-serverless"])
def gcp_deployment(request, dataproc, gcs_lake_endpoint, emulators, tmp_path_factory):
    """A deployment switched from ``local`` to ``dataproc`` / ``dataproc-serverless`` (README "Run on Google
    Cloud"): the lake, the staged code and the job metrics in one GCS, the replicas in S3 and Azure."""
    from google.cloud import storage

    from tricloud.replication.stores import make_store

    with dataproc.lock:
        for table in (dataproc.clusters, dataproc.jobs, dataproc.batches, dataproc.operations, dataproc.requests):
            table.clear()
        dataproc.calls.clear()
        dataproc.created.clear()
    tag = uuid.uuid4().hex[:10]
    lake_bucket, code_bucket, replicas = f"lake-{tag}", f"code-{tag}", f"replica-{tag}"
    extra = {"is_anonymous": True, "project": PROJECT, "api_endpoint": dataproc.endpoint}
    env = {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "google_cloud_platform", "extra": extra}),
        "TRICLOUD_CLUSTER_BACKEND": request.param,
        "TRICLOUD_GCP_CONN_ID": CONN_ID,
        "TRICLOUD_GCS_CODE_URI": f"gs://{code_bucket}/deploy",
        "TRICLOUD_DATAPROC_REGION": REGION,
        "LAKE_ROOT": f"gs://{lake_bucket}/prod",
        "REPLICA_BUCKET": replicas,
        # A 300-row hour of a 40-product catalog: one rejected catalog line leaves ~8 % of the orders with an
        # unknown product, over the quality gate's 5 %. The gate has its own e2e (tests/e2e/test_quality_gate.py).
        "TRICLOUD_DQ_MAX_REJECT_RATE": "0.5",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        gcs = storage.Client()  # anonymous, on the module's emulator
        for bucket in (lake_bucket, code_bucket, "dataproc-staging"):
            if not gcs.bucket(bucket).exists():
                gcs.create_bucket(bucket)
        for cloud in ("s3", "gcs", "azure"):  # GCS's too: it must stay empty (the lake is GCS's copy)
            make_store(cloud, replicas).ensure_bucket()
        gen = generate.generate_hour(tmp_path_factory.mktemp("raw"), HOUR, rows=ROWS, products=40)
        for ds, path in ((lake.RAW_CUSTOMERS, gen.customer_file), (lake.RAW_PRODUCTS, gen.product_file)):
            key = f"prod/{lake.partition('/', ds, HOUR).relpath}/{path.name}"
            gcs.bucket(lake_bucket).blob(key).upload_from_string(path.read_bytes())
        yield gen, env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def run_on_dataproc(dataproc, gcp_deployment, tmp_path_factory):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    gen, env = gcp_deployment
    dag = dag_for_test("customer_enrichment")
    gcs = GCSHook(gcp_conn_id="google_cloud_default")
    with EmulatedDataproc(dataproc, gcs, tmp_path_factory.mktemp("dataproc")) as runner:
        # A manual run's interval ends at its logical date: 11:00 processes [10:00, 11:00).
        dr = dag.test(logical_date=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))
    return dr, gen, env, runner


def the_lake():
    from tricloud.lake import lake as open_lake

    return open_lake()


def test_the_hour_succeeds_on_dataproc(run_on_dataproc):
    dr, *_ = run_on_dataproc
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", states


def test_every_row_is_accounted_once_as_computed_from_the_raw_files(run_on_dataproc):
    from include.lake_commit import read_tables

    _, gen, env, _ = run_on_dataproc
    assert the_lake().root == env["LAKE_ROOT"]
    orders, order_reasons = reference.clean_customers(gen.customer_file, HOUR)
    products, _ = reference.clean_products(gen.product_file)
    lake_ = the_lake()

    def table(dataset):
        return read_tables(lake_, lake.partition("/", dataset, HOUR).relpath)

    clean, rejects = table(lake.CLEAN_CUSTOMERS), table(lake.REJECTS_CUSTOMERS)
    assert clean.num_rows + rejects.num_rows == ROWS  # nothing lost
    assert sorted(clean.column("order_id").to_pylist()) == sorted(o["order_id"] for o in orders)  # each once
    got_reasons: dict[str, int] = {}
    for reason in rejects.column("reject_reason").to_pylist():
        got_reasons[reason] = got_reasons.get(reason, 0) + 1
    assert got_reasons == order_reasons
    assert table(lake.CLEAN_PRODUCTS).num_rows == len(products)
    assert table(lake.CLEAN_PRODUCTS).num_rows + table(lake.REJECTS_PRODUCTS).num_rows == gen.product_rows
    assert table(lake.ENRICHED_CUSTOMERS).num_rows == len(reference.enrich(orders, products)[0])


def test_the_lake_and_the_replicas_in_s3_and_azure_match_by_checksum(run_on_dataproc):
    import hashlib

    from include.replication import build_manifest, read_manifest, remote_sha256
    from tricloud.replication.stores import make_store

    _, _, env, _ = run_on_dataproc
    lake_ = the_lake()
    manifest = build_manifest(lake_, HOUR)
    assert manifest["rows"]["clean/customer_activity"] + manifest["rows"]["rejects/customer_activity"] == ROWS
    for cloud in ("s3", "azure"):
        store = make_store(cloud, env["REPLICA_BUCKET"])
        assert read_manifest(store, HOUR) == manifest, cloud
        for entry in manifest["files"]:
            assert remote_sha256(store, entry["path"]) == entry["sha256"], (cloud, entry["path"])
    assert make_store("gcs", env["REPLICA_BUCKET"]).list_keys("") == []  # GCS holds the lake: no second copy
    for entry in manifest["files"]:  # the primary's bytes, read back from GCS
        relpath, _, name = entry["path"].rpartition("/")
        data = lake_.read_partition(relpath, name)[name]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]


def test_each_spark_job_was_submitted_once_at_the_fake_and_ran_once_here(dataproc, run_on_dataproc):
    _, _, env, runner = run_on_dataproc
    if env["TRICLOUD_CLUSTER_BACKEND"] == "dataproc":
        ids = [j["reference"]["jobId"] for j in dataproc.jobs.values()]
        states = [j["status"]["state"] for j in dataproc.jobs.values()]
        assert (dataproc.created["job"], dataproc.created["batch"], states) == (2, 0, ["DONE", "DONE"])
        assert dataproc.calls["jobs.submit"] == 2
    else:
        ids = [b["name"].rsplit("/", 1)[-1] for b in dataproc.batches.values()]
        states = [b["state"] for b in dataproc.batches.values()]
        assert (dataproc.created["batch"], dataproc.created["job"], states) == (2, 0, ["SUCCEEDED", "SUCCEEDED"])
    for task in SPARK_JOBS:  # the job key names the task: exactly one job / batch per Spark job
        assert len([i for i in ids if task.replace("_", "-") in i or task in i]) == 1, ids
    assert sorted(r.step_id for r in runner.ran) == sorted(ids)  # each ran once, here
    assert all(r.exit_code == 0 for r in runner.ran)
