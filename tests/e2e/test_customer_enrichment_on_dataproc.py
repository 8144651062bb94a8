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

import pytest

from tests.support import enrichment_on_cloud as hour
from tests.support.dataproc_fake import fake_dataproc
from tests.support.dataproc_runner import EmulatedDataproc
from tests.support.gcs_preconditions import gcs_with_preconditions

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]
SPARK_JOBS = hour.SPARK_JOBS
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
    buckets = hour.new_buckets()
    extra = {"is_anonymous": True, "project": PROJECT, "api_endpoint": dataproc.endpoint}
    env = hour.deployment_env(
        request.param,
        f"gs://{buckets.lake}/prod",
        buckets,
        **{f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "google_cloud_platform", "extra": extra})},
        TRICLOUD_GCP_CONN_ID=CONN_ID,
        TRICLOUD_GCS_CODE_URI=f"gs://{buckets.code}/deploy",
        TRICLOUD_DATAPROC_REGION=REGION,
    )
    with hour.applied(env):
        gcs = storage.Client()  # anonymous, on the module's emulator
        for bucket in (buckets.lake, buckets.code, "dataproc-staging"):
            if not gcs.bucket(bucket).exists():
                gcs.create_bucket(bucket)
        for cloud in ("s3", "gcs", "azure"):  # GCS's too: it must stay empty (the lake is GCS's copy)
            make_store(cloud, buckets.replicas).ensure_bucket()
        lake_bucket = gcs.bucket(buckets.lake)
        gen = hour.upload_raw_hour(
            tmp_path_factory.mktemp("raw"), lambda key, data: lake_bucket.blob(key).upload_from_string(data)
        )
        yield gen, env


@pytest.fixture(scope="module")
def run_on_dataproc(dataproc, gcp_deployment, tmp_path_factory):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    gen, env = gcp_deployment
    gcs = GCSHook(gcp_conn_id="google_cloud_default")
    with EmulatedDataproc(dataproc, gcs, tmp_path_factory.mktemp("dataproc")) as runner:
        dr = hour.run_the_hour()
    return dr, gen, env, runner


def test_the_hour_succeeds_on_dataproc(run_on_dataproc):
    dr, *_ = run_on_dataproc
    hour.assert_succeeded(dr)


def test_every_row_is_accounted_once_as_computed_from_the_raw_files(run_on_dataproc):
    _, gen, env, _ = run_on_dataproc
    assert hour.the_lake().root == env["LAKE_ROOT"]
    hour.assert_every_row_accounted_once(gen)


def test_the_lake_and_the_replicas_in_s3_and_azure_match_by_checksum(run_on_dataproc):
    from tricloud.replication.stores import make_store

    _, _, env, _ = run_on_dataproc
    hour.assert_replicas_match_the_lake(env["REPLICA_BUCKET"], ("s3", "azure"))  # the primary: GCS, read here
    assert make_store("gcs", env["REPLICA_BUCKET"]).list_keys("") == []  # GCS holds the lake: no second copy


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
