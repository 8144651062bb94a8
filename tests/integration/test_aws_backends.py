"""The ``emr`` and ``emr-serverless`` backends through the amazon provider's hooks, against moto.

moto runs in this process (tests/support/moto_aws.py) on 127.0.0.1 and is reached through an ordinary
AWS connection with ``endpoint_url``. What moto never moves, the test moves, visibly, by acting as the
cloud would (``cluster_finishes``): it sets the step's / job run's state in moto's backend, writes the
metrics object the job would have written at its result URI and the driver's stderr where EMR would
ship it. ``CancelSteps``, which moto lacks, is answered emulator-side as EMR answers it. Our code is
never patched. Spark itself does not run here (it cannot reach s3:// on this machine).
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.cloud_jobs import APP, assert_one_job_per_key, ingest_customers_job
from tests.support.moto_aws import CONN_ID, EMR_CONN_ID, moto_aws
from tricloud.cluster import BACKEND_ENV, JobState, SparkJob, backend_from_settings
from tricloud.cluster.aws import MANAGED_TAG
from tricloud.cluster.code_bundle import project_root, project_zip
from tricloud.cluster.emr import EmrBackend
from tricloud.cluster.emr_serverless import EmrServerlessBackend

BUCKET = "tricloud-code"
CODE_URI = f"s3://{BUCKET}/deploy"
LAKE = f"s3://{BUCKET}/lake"
BACKENDS = ("emr", "emr-serverless")


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture
def cloud(aws, monkeypatch):
    """A fresh control plane (moto reset), the code bucket, and the backends' settings in the environment."""
    aws.reset()
    aws.client("s3").create_bucket(Bucket=BUCKET)
    role = aws.client("iam").create_role(RoleName="tricloud-job", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.setenv("TRICLOUD_CODE_URI", CODE_URI)
    monkeypatch.setenv("LAKE_ROOT", LAKE)  # a cloud backend refuses a local lake
    monkeypatch.setenv("TRICLOUD_AWS_CONN_ID", CONN_ID)
    monkeypatch.setenv("TRICLOUD_EMR_CONN_ID", EMR_CONN_ID)
    monkeypatch.setenv("TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN", role)
    return aws


def make_backend(name: str, **overrides):
    return backend_from_settings(name, poll_interval=1, **overrides)


def a_job(n: int = 1) -> SparkJob:
    return ingest_customers_job(LAKE, try_number=n)


def cluster_finishes(aws, backend, handle, state: str, *, metrics=None, stderr: str | None = None, reason=None):
    """Act as the cloud: the step / job run ends in ``state``; the job's metrics and driver log land in S3."""
    if metrics is not None:
        aws.put_json(handle.result_uri, metrics)
    if backend.name == "emr":
        step = aws.step(handle.cluster_id, handle.job_id)
        step.state = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED"}[state]
        step.last_state_change_reason = reason
    else:
        run = next(r for r in aws.serverless().job_runs[handle.cluster_id] if r.id == handle.job_id)
        run.state = {"SUCCEEDED": "SUCCESS", "FAILED": "FAILED", "RUNNING": "RUNNING"}[state]
        run.state_details = reason
    if stderr is not None:
        aws.put_gz(backend.driver_log(handle), stderr)


def jobs_at_endpoint(aws, backend, cluster_id: str, key: str) -> list:
    """The steps / job runs named ``key`` as the endpoint holds them (counted there, not by our code)."""
    if backend.name == "emr":
        return aws.steps_named(cluster_id, key)
    return aws.job_runs_named(cluster_id, key)


def live_clusters(aws, backend, name: str = "tricloud") -> list[str]:
    if backend.name == "emr":
        return [c.id for c in aws.emr().clusters.values() if c.name == name and c.state not in ("TERMINATED",)]
    return [a.id for a in aws.serverless().applications.values() if a.name == name and a.state != "TERMINATED"]


@pytest.mark.parametrize("name", BACKENDS)
class TestAwsBackend:
    def test_configuration_picks_the_backend(self, cloud, name, monkeypatch):
        monkeypatch.setenv(BACKEND_ENV, name)
        backend = backend_from_settings()
        assert isinstance(backend, {"emr": EmrBackend, "emr-serverless": EmrServerlessBackend}[name])
        assert backend.settings.code_uri == CODE_URI

    def test_start_creates_then_reuses(self, cloud, name):
        backend = make_backend(name, created_by="customer_enrichment/run-1")
        first = backend.start(timeout=10)
        second = make_backend(name).start(timeout=10)
        assert first.started is True and second.started is False
        assert second.cluster_id == first.cluster_id
        assert live_clusters(cloud, backend) == [first.cluster_id]
        if name == "emr":
            cluster = cloud.emr().clusters[first.cluster_id]
            tags = {t["Key"]: t["Value"] for t in cluster.tags}
            assert cluster.log_uri.rstrip("/") == f"{CODE_URI}/emr-logs"
        else:
            app = cloud.serverless().applications[first.cluster_id]
            tags = app.tags
            assert app.auto_stop_configuration == {"enabled": True, "idleTimeoutMinutes": 15}
            assert app.type.upper() == "SPARK"
        assert tags[MANAGED_TAG] == "true" and tags["tricloud:created-by"] == "customer_enrichment/run-1"

    def test_a_local_lake_root_fails_fast_before_anything_is_created(self, cloud, name, monkeypatch, tmp_path):
        """On the cloud's machines a local LAKE_ROOT would be the node's own disk: refused, naming LAKE_ROOT."""
        monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
        backend = make_backend(name)
        with pytest.raises(ValueError, match=r"LAKE_ROOT points at a local path .*set LAKE_ROOT=s3://"):
            backend.start(timeout=10)
        assert live_clusters(cloud, backend) == []  # nothing created, nothing to pay for
        monkeypatch.setenv("LAKE_ROOT", "gs://elsewhere/lake")  # an object store, but not one EMR's Spark reaches
        with pytest.raises(ValueError, match=r"reaches only S3 \(EMRFS\): set LAKE_ROOT=s3://"):
            backend.start(timeout=10)
        assert live_clusters(cloud, backend) == []
        monkeypatch.setenv("LAKE_ROOT", LAKE)
        info = backend.start(timeout=10)
        job = a_job()
        local_job = replace(job, **{"result_uri": str(tmp_path / "lake" / "_jobs" / "m.json")})
        with pytest.raises(ValueError, match="LAKE_ROOT points at a local path"):
            backend.submit(local_job, info.cluster_id)
        assert jobs_at_endpoint(cloud, backend, info.cluster_id, job.key) == []

    def test_submit_stages_code_and_success_returns_the_metrics(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=10)
        job = a_job()
        handle = backend.submit(job, info.cluster_id)
        # The staged code at the endpoint: the application byte for byte, and include/ as a zip.
        s3 = cloud.client("s3")
        app_key = handle.details["application"].removeprefix(f"s3://{BUCKET}/")
        zip_key = handle.details["py_files"].removeprefix(f"s3://{BUCKET}/")
        assert s3.get_object(Bucket=BUCKET, Key=app_key)["Body"].read() == Path(APP).read_bytes()
        names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=zip_key)["Body"].read())).namelist()
        assert "include/jobs/common.py" in names and not any("__pycache__" in n for n in names)
        # What the endpoint was asked to run.
        if name == "emr":
            step = cloud.step(info.cluster_id, handle.job_id)
            args = step.args
            assert step.action_on_failure == "CONTINUE" and step.jar == "command-runner.jar"
            assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
            assert args[args.index("--py-files") + 1] == handle.details["py_files"]
            assert args[-4:] == [*job.args, "--metrics-file", job.result_uri]
            assert handle.details["application"] in args
        else:
            run = cloud.job_runs_named(info.cluster_id, job.key)[0]
            spark_submit = run.job_driver["sparkSubmit"]
            assert run.client_token == job.key
            assert spark_submit["entryPoint"] == handle.details["application"]
            assert spark_submit["entryPointArguments"] == [*job.args, "--metrics-file", job.result_uri]
            assert f"--py-files {handle.details['py_files']}" in spark_submit["sparkSubmitParameters"]
            world_run_state = run.state
            run.state = "RUNNING"  # moto starts runs as SUCCESS; a real run is RUNNING first
            assert world_run_state == "SUCCESS"
        assert backend.job_status(handle).state is JobState.RUNNING
        metrics = {"rows": 1234, "rejects": 5, "output": f"{LAKE}/customers/hour=2026-11-24T10"}
        cluster_finishes(cloud, backend, handle, "SUCCEEDED", metrics=metrics)
        assert backend.job_status(handle).state is JobState.SUCCEEDED
        assert backend.read_result(handle) == metrics

    def test_same_key_twice_is_one_job_at_the_endpoint(self, cloud, name):
        """One step / job run per key, counted at moto's endpoint."""
        assert_one_job_per_key(
            lambda: make_backend(name),
            LAKE,
            succeed=lambda backend, handle: cluster_finishes(cloud, backend, handle, "SUCCEEDED", metrics={"rows": 1}),
            jobs_at_endpoint=lambda backend, cluster_id, key: len(jobs_at_endpoint(cloud, backend, cluster_id, key)),
            start_timeout=10,
        )

    def test_failed_job_reports_the_drivers_error(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=10)
        handle = backend.submit(a_job(), info.cluster_id)
        traceback = (
            "Traceback (most recent call last):\n"
            '  File "ingest_customers.py", line 88, in main\n'
            "ValueError: hour 2026-11-24T25:00 is not an hour"
        )
        cluster_finishes(cloud, backend, handle, "FAILED", stderr=traceback, reason="Step failed")
        status = backend.job_status(handle)
        assert status.state is JobState.FAILED
        error = backend.driver_error(handle, status)
        assert "ValueError: hour 2026-11-24T25:00 is not an hour" in error
        assert backend.driver_log(handle) in error
        assert backend.read_result(handle) == {}

    def test_cancel_and_cancel_on_kill(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=10)
        first = backend.submit(a_job(1), info.cluster_id)
        second = backend.submit(a_job(2), info.cluster_id)
        if name == "emr-serverless":
            for handle in (first, second):
                cluster_finishes(cloud, backend, handle, "RUNNING")
        backend.cancel(first)
        assert backend.job_status(first).state is JobState.CANCELLED
        backend.cancel(first)  # already ended: left as it is
        # The deferred task's kill: the triggerer calls the trigger's on_kill (Airflow 3.3).
        asyncio.run(backend.trigger(second, poll_interval=1).on_kill())
        assert backend.job_status(second).state is JobState.CANCELLED

    def test_teardown_stops_only_what_it_created_and_is_idempotent(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=10)
        assert backend.stop(cluster_id=info.cluster_id) is True
        assert live_clusters(cloud, backend) == []
        assert backend.stop(cluster_id=info.cluster_id) is False  # already terminated: success
        assert backend.stop(cluster_id=None) is False
        # Someone else's (untagged) cluster of another name is never terminated.
        if name == "emr":
            foreign = cloud.client("emr").run_job_flow(
                Name="team-x", ReleaseLabel="emr-7.12.0", Instances={"KeepJobFlowAliveWhenNoSteps": True}
            )["JobFlowId"]
        else:
            foreign = cloud.client("emr-serverless").create_application(
                name="team-x", releaseLabel="emr-7.12.0", type="SPARK"
            )["applicationId"]
        assert backend.stop(cluster_id=foreign) is False
        assert live_clusters(cloud, backend, "team-x") == [foreign]

    def test_teardown_leaves_a_cluster_another_run_still_uses(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=10)
        handle = backend.submit(a_job(), info.cluster_id)
        if name == "emr-serverless":
            cluster_finishes(cloud, backend, handle, "RUNNING")
        assert backend.stop(cluster_id=info.cluster_id) is False
        assert live_clusters(cloud, backend) == [info.cluster_id]
        cluster_finishes(cloud, backend, handle, "SUCCEEDED")
        assert backend.stop(cluster_id=info.cluster_id) is True

    def test_two_clusters_with_the_name_is_a_clear_error(self, cloud, name):
        backend = make_backend(name)
        if name == "emr":
            ids = [
                cloud.client("emr").run_job_flow(
                    Name="tricloud", ReleaseLabel="emr-7.12.0", Instances={"KeepJobFlowAliveWhenNoSteps": True}
                )["JobFlowId"]
                for _ in range(2)
            ]
        else:
            ids = [
                cloud.client("emr-serverless").create_application(
                    name="tricloud", releaseLabel="emr-7.12.0", type="SPARK"
                )["applicationId"]
                for _ in range(2)
            ]
        with pytest.raises(RuntimeError) as err:
            backend.start(timeout=10)
        assert all(i in str(err.value) for i in ids) and "TRICLOUD_EMR" in str(err.value)
        assert sorted(live_clusters(cloud, backend)) == sorted(ids)  # nothing created, nothing ended


def test_emr_cluster_whose_start_failed_is_terminated(cloud, monkeypatch):
    """The cluster never leaves BOOTSTRAPPING (moto: made to stop there); start gives up and ends it."""
    from moto.emr.models import Cluster

    def stuck_in_bootstrap(self):  # emulator side: the bootstrap action never finishes
        self.state = "BOOTSTRAPPING"

    monkeypatch.setattr(Cluster, "run_bootstrap_actions", stuck_in_bootstrap)
    backend = make_backend("emr", start_timeout=2)
    with pytest.raises(RuntimeError, match="did not start.*terminated"):
        backend.start(timeout=2)
    states = [c.state for c in cloud.emr().clusters.values() if c.name == "tricloud"]
    assert states == ["TERMINATED"]


def test_serverless_application_whose_start_failed_is_deleted(cloud, monkeypatch):
    """The application never gets past STARTING (moto: made to stay there); start gives up and deletes it."""
    import moto.emrserverless.models as models

    monkeypatch.setattr(models, "APPLICATION_STATUS", "STARTING")
    backend = make_backend("emr-serverless")
    with pytest.raises(RuntimeError, match="did not become ready.*deleted"):
        backend.start(timeout=2)
    states = [a.state for a in cloud.serverless().applications.values() if a.name == "tricloud"]
    assert states == ["TERMINATED"]


class TestSettings:
    def test_code_uri_is_required_and_named(self, monkeypatch):
        monkeypatch.delenv("TRICLOUD_CODE_URI", raising=False)
        monkeypatch.setenv("TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN", "arn:aws:iam::123456789012:role/x")
        for name in BACKENDS:
            with pytest.raises(ValueError, match="TRICLOUD_CODE_URI is not set: set it to s3://"):
                backend_from_settings(name)

    def test_code_uri_must_be_s3(self, monkeypatch):
        monkeypatch.setenv("TRICLOUD_CODE_URI", "/tmp/code")
        with pytest.raises(ValueError, match="TRICLOUD_CODE_URI='/tmp/code' must be an S3 URI"):
            backend_from_settings("emr")

    def test_serverless_needs_the_execution_role(self, monkeypatch):
        monkeypatch.setenv("TRICLOUD_CODE_URI", CODE_URI)
        monkeypatch.delenv("TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN", raising=False)
        with pytest.raises(ValueError, match="TRICLOUD_EMR_SERVERLESS_EXECUTION_ROLE_ARN is not set"):
            backend_from_settings("emr-serverless")

    def test_idle_timeout_bounds_and_unknown_overrides(self, monkeypatch):
        monkeypatch.setenv("TRICLOUD_CODE_URI", CODE_URI)
        monkeypatch.setenv("TRICLOUD_EMR_IDLE_TIMEOUT", "5")
        with pytest.raises(ValueError, match="TRICLOUD_EMR_IDLE_TIMEOUT=5"):
            backend_from_settings("emr")
        monkeypatch.delenv("TRICLOUD_EMR_IDLE_TIMEOUT")
        with pytest.raises(ValueError, match="unknown setting"):
            backend_from_settings("emr", cluster_nmae="typo")


def test_project_zip_depends_on_the_sources_only(tmp_path):
    """Two checkouts with the same sources (other mtimes, stray caches) stage the same zip, so the same
    object key; a changed source gives another."""
    import os
    import shutil

    checkouts = []
    for name in ("a", "b"):
        shutil.copytree(project_root() / "include", tmp_path / name / "include", copy_function=shutil.copyfile)
        checkouts.append(tmp_path / name)
    os.utime(checkouts[1] / "include" / "__init__.py", (0, 1_000_000_000))  # same bytes, another mtime
    (checkouts[1] / "include" / "__pycache__").mkdir(exist_ok=True)
    (checkouts[1] / "include" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    first, second = project_zip(checkouts[0]), project_zip(checkouts[1])
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == sorted(names) and "include/jobs/common.py" in names
    assert not any("__pycache__" in n for n in names)
    common = checkouts[1] / "include" / "jobs" / "common.py"
    common.write_text(common.read_text() + "\n# changed\n")
    assert project_zip(checkouts[1]) != first
