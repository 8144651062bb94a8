"""customer_enrichment, unchanged, on ``emr`` and ``emr-serverless`` with ``LAKE_ROOT=s3://…``, against the emulator.

The DAG file is the one every deployment runs; only configuration differs (``TRICLOUD_CLUSTER_BACKEND``,
``TRICLOUD_CODE_URI`` and ``LAKE_ROOT`` on S3, the AWS connections pointing at the in-process moto). Airflow
runs the hour with ``dag.test`` (as tests/e2e/test_customer_enrichment_dag.py does: one process, so the
in-process moto and the test-side cluster are reachable). The control planes are moto's; the EMR steps
are run by :class:`tests.support.emr_cluster.EmulatedEmrCluster`, the EMR Serverless job runs by
:class:`tests.support.emr_serverless_app.EmulatedEmrServerless`; both fetch the staged code from S3 and
run the spark-submit here with staged object-store I/O (this machine's Spark has no EMRFS: the one
difference from EMR). Each backend's hour is one module-scoped parameter; the world's emulators are
shared. The lake is the emulator's S3; the replicas go to the world's GCS and Azure emulators.

Checked independently: rows from the generated CSV (tests/support/reference.py) against the committed
objects, every replica's SHA-256 read back, the steps or job runs counted at the endpoint, the state there
of the cluster or application the run created.
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
from tests.support.emr_cluster import EmulatedEmrCluster
from tests.support.emr_serverless_app import EmulatedEmrServerless
from tests.support.moto_aws import ACCOUNT, CONN_ID, EMR_CONN_ID, moto_aws

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
ROWS = 300
SPARK_JOBS = ("ingest_customer_data", "ingest_product_data")
RUNNERS = {"emr": EmulatedEmrCluster, "emr-serverless": EmulatedEmrServerless}


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture(scope="module", params=list(RUNNERS))
def emr_deployment(request, aws, emulators, tmp_path_factory):
    """A deployment switched from ``local`` to ``emr`` / ``emr-serverless`` (README "Run on AWS"), on the emulators.

    ``aws_default`` (the lake's connection) points at the same emulator as the backend's connection: the
    lake, the staged code and the job metrics are in one S3, as in one AWS account.
    """
    from tricloud.replication.stores import make_store

    tag = uuid.uuid4().hex[:10]
    lake_bucket, code_bucket, replicas = f"lake-{tag}", f"code-{tag}", f"replica-{tag}"
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"],
        "TRICLOUD_CLUSTER_BACKEND": request.param,
        "TRICLOUD_CODE_URI": f"s3://{code_bucket}/deploy",
        "TRICLOUD_AWS_CONN_ID": CONN_ID,
        "TRICLOUD_EMR_CONN_ID": EMR_CONN_ID,
        "TRICLOUD_EMR_START_TIMEOUT": "60",
        "TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/tricloud-job-{tag}",
        "LAKE_ROOT": f"s3://{lake_bucket}/prod",
        "REPLICA_BUCKET": replicas,
        # A 300-row hour of a 40-product catalog: one rejected catalog line leaves ~8 % of the orders with an
        # unknown product, over the quality gate's 5 %. The gate has its own e2e (tests/e2e/test_quality_gate.py).
        "TRICLOUD_DQ_MAX_REJECT_RATE": "0.5",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        aws.reset()  # moto's backends are process-wide: no cluster of an earlier test module may be reused
        s3 = aws.client("s3")
        aws.client("iam").create_role(RoleName=f"tricloud-job-{tag}", AssumeRolePolicyDocument="{}")
        for bucket in (lake_bucket, code_bucket):
            s3.create_bucket(Bucket=bucket)
        for cloud in ("gcs", "azure"):
            make_store(cloud, replicas).ensure_bucket()
        gen = generate.generate_hour(tmp_path_factory.mktemp("raw"), HOUR, rows=ROWS, products=40)
        for ds, path in ((lake.RAW_CUSTOMERS, gen.customer_file), (lake.RAW_PRODUCTS, gen.product_file)):
            key = f"prod/{lake.partition('/', ds, HOUR).relpath}/{path.name}"
            s3.put_object(Bucket=lake_bucket, Key=key, Body=path.read_bytes())
        yield gen, env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def run_on_emr(aws, emr_deployment, tmp_path_factory):

    gen, env = emr_deployment
    dag = dag_for_test("customer_enrichment")
    with RUNNERS[env["TRICLOUD_CLUSTER_BACKEND"]](aws, tmp_path_factory.mktemp("emr")) as cluster:
        # A manual run's interval ends at its logical date: 11:00 processes [10:00, 11:00).
        dr = dag.test(logical_date=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))
    return dr, gen, env, cluster


def the_lake():
    from tricloud.lake import lake as open_lake

    return open_lake()


def test_the_hour_succeeds_on_emr(run_on_emr):
    dr, *_ = run_on_emr
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", states


def test_every_row_is_accounted_once_as_computed_from_the_raw_files(run_on_emr):
    from include.lake_commit import read_tables

    _, gen, _, _ = run_on_emr
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
    relpath = lake.partition("/", lake.CLEAN_CUSTOMERS, HOUR).relpath
    summary = json.loads(lake_.read_partition(relpath, lake.SUMMARY_FILE)[lake.SUMMARY_FILE])
    assert (summary["rows_in"], summary["rejected_by_reason"]) == (ROWS, order_reasons)


def test_the_lake_and_the_replicas_in_the_other_clouds_match_by_checksum(run_on_emr):
    import hashlib

    from include.replication import build_manifest, read_manifest, remote_sha256
    from tricloud.replication.stores import make_store

    _, _, env, _ = run_on_emr
    lake_ = the_lake()
    manifest = build_manifest(lake_, HOUR)
    assert manifest["rows"]["clean/customer_activity"] + manifest["rows"]["rejects/customer_activity"] == ROWS
    for cloud in ("gcs", "azure"):
        store = make_store(cloud, env["REPLICA_BUCKET"])
        assert read_manifest(store, HOUR) == manifest, cloud
        for entry in manifest["files"]:
            assert remote_sha256(store, entry["path"]) == entry["sha256"], (cloud, entry["path"])
    # The primary's bytes, read back from S3 by this test.
    for entry in manifest["files"]:
        relpath, _, name = entry["path"].rpartition("/")
        data = lake_.read_partition(relpath, name)[name]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]


def test_each_spark_job_ran_once_at_the_endpoint_and_what_the_run_created_is_gone(aws, run_on_emr):
    _, _, env, runner = run_on_emr
    if env["TRICLOUD_CLUSTER_BACKEND"] == "emr":
        one_step_per_job_and_the_cluster_terminated(aws, runner)
    else:
        one_job_run_per_job_and_the_application_deleted(aws, runner)


def one_step_per_job_and_the_cluster_terminated(aws, cluster) -> None:
    (emr,) = aws.emr().clusters.values()  # the run created one cluster
    names = [s.name for s in emr.steps]
    for task in SPARK_JOBS:  # the job key names the task: exactly one step per Spark job
        assert len([n for n in names if n.startswith(f"tricloud-{task}.")]) == 1, names
    assert len(names) == len(SPARK_JOBS)
    assert [s.state for s in emr.steps] == ["COMPLETED", "COMPLETED"]
    assert sorted(r.step_id for r in cluster.ran) == sorted(s.id for s in emr.steps)  # each run once, here
    assert all(r.exit_code == 0 for r in cluster.ran)
    assert emr.state == "TERMINATED"  # stop_cluster ended what this run created


def one_job_run_per_job_and_the_application_deleted(aws, runner) -> None:
    client = aws.client("emr-serverless")
    (app,) = client.list_applications()["applications"]  # the run created one application
    runs = client.list_job_runs(applicationId=app["id"])["jobRuns"]
    names = [r["name"] for r in runs]
    for task in SPARK_JOBS:  # the job key names the task: exactly one job run per Spark job
        assert len([n for n in names if n.startswith(f"tricloud-{task}.")]) == 1, names
    assert len(names) == len(SPARK_JOBS)
    assert [r["state"] for r in runs] == ["SUCCESS", "SUCCESS"]
    # The idempotency token AWS keys StartJobRun on is the job key (GetJobRun does not return it).
    tokens = {r.name: r.client_token for r in aws.serverless().job_runs[app["id"]]}
    assert tokens == {n: n for n in names}
    assert sorted(r.step_id for r in runner.ran) == sorted(r["id"] for r in runs)  # each run once, here
    assert all(r.exit_code == 0 for r in runner.ran)
    assert client.get_application(applicationId=app["id"])["application"]["state"] == "TERMINATED"  # stop deleted it
