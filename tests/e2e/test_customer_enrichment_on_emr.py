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

import os

import pytest

from tests.support import enrichment_on_cloud as hour
from tests.support.emr_cluster import EmulatedEmrCluster
from tests.support.emr_serverless_app import EmulatedEmrServerless
from tests.support.moto_aws import ACCOUNT, CONN_ID, EMR_CONN_ID, moto_aws

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]
SPARK_JOBS = hour.SPARK_JOBS
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

    buckets = hour.new_buckets()
    env = hour.deployment_env(
        request.param,
        f"s3://{buckets.lake}/prod",
        buckets,
        AIRFLOW_CONN_AWS_DEFAULT=os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"],
        TRICLOUD_CODE_URI=f"s3://{buckets.code}/deploy",
        TRICLOUD_AWS_CONN_ID=CONN_ID,
        TRICLOUD_EMR_CONN_ID=EMR_CONN_ID,
        TRICLOUD_EMR_START_TIMEOUT="60",
        TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/tricloud-job-{buckets.tag}",
    )
    with hour.applied(env):
        aws.reset()  # moto's backends are process-wide: no cluster of an earlier test module may be reused
        s3 = aws.client("s3")
        aws.client("iam").create_role(RoleName=f"tricloud-job-{buckets.tag}", AssumeRolePolicyDocument="{}")
        for bucket in (buckets.lake, buckets.code):
            s3.create_bucket(Bucket=bucket)
        for cloud in ("gcs", "azure"):
            make_store(cloud, buckets.replicas).ensure_bucket()
        gen = hour.upload_raw_hour(
            tmp_path_factory.mktemp("raw"), lambda key, data: s3.put_object(Bucket=buckets.lake, Key=key, Body=data)
        )
        yield gen, env


@pytest.fixture(scope="module")
def run_on_emr(aws, emr_deployment, tmp_path_factory):
    gen, env = emr_deployment
    with RUNNERS[env["TRICLOUD_CLUSTER_BACKEND"]](aws, tmp_path_factory.mktemp("emr")) as cluster:
        dr = hour.run_the_hour()
    return dr, gen, env, cluster


def test_the_hour_succeeds_on_emr(run_on_emr):
    dr, *_ = run_on_emr
    hour.assert_succeeded(dr)


def test_every_row_is_accounted_once_as_computed_from_the_raw_files(run_on_emr):
    _, gen, _, _ = run_on_emr
    hour.assert_every_row_accounted_once(gen)


def test_the_lake_and_the_replicas_in_the_other_clouds_match_by_checksum(run_on_emr):
    _, _, env, _ = run_on_emr
    hour.assert_replicas_match_the_lake(env["REPLICA_BUCKET"], ("gcs", "azure"))  # the primary: S3, read here


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
