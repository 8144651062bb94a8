"""The ``dataproc`` and ``dataproc-serverless`` backends through the google provider's hooks, against local fakes.

Control plane: the real google-cloud-dataproc client (REST transport, anonymous credentials) through the
provider's ``DataprocHook`` — our :class:`~tricloud.cluster.gcp.DataprocEndpointHook` only adds the
connection's ``api_endpoint`` extra — against tests/support/dataproc_fake.py (Dataproc REST API v1),
which scripts cluster, job and batch states and counts what it is asked. Staging, metrics and driver
output: the test world's GCS emulator through ``GCSHook``.

What a running driver would do, the test does, visibly (``driver_finishes``): it writes the metrics
object at the job's ``--metrics-file`` and the driver output where Dataproc puts it
(``driverOutputResourceUri`` / ``runtimeInfo.outputUri`` + ``.000000000``), then ends the job at the
fake. Spark does not run here: this machine's Spark has no GCS connector, and the project's lake layer
does not accept ``gs://`` yet (docs/design.md). Our code is never patched.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.dataproc_fake import fake_dataproc
from tricloud.cluster import BACKEND_ENV, JobState, SparkJob, backend_from_settings, job_key
from tricloud.cluster.aws import project_root
from tricloud.cluster.dataproc import DataprocBackend
from tricloud.cluster.dataproc_serverless import DataprocServerlessBackend
from tricloud.cluster.gcp import MANAGED_LABEL

PROJECT, REGION = "tricloud-test", "europe-west1"
CONN_ID = "gcp_tricloud_test"
BUCKET = "tricloud-dataproc-code"
CODE_URI = f"gs://{BUCKET}/deploy"
LAKE = f"gs://{BUCKET}/lake"
APP = str(project_root() / "include" / "jobs" / "ingest_customers.py")
BACKENDS = ("dataproc", "dataproc-serverless")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "ingest_customers.py", line 88, in main\n'
    "ValueError: hour 2026-11-24T25:00 is not an hour"
)


@pytest.fixture(scope="module")
def dataproc():
    with fake_dataproc() as fake:
        yield fake


@pytest.fixture(scope="module")
def gcs(emulators):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook(gcp_conn_id="google_cloud_default")  # the world's anonymous connection to the emulator
    if not hook.get_conn().bucket(BUCKET).exists():
        hook.create_bucket(bucket_name=BUCKET, project_id=PROJECT)
    return hook


@pytest.fixture
def cloud(dataproc, gcs, monkeypatch):
    """A fresh fake control plane, the code bucket on the emulator, the backends' settings in the environment."""
    with dataproc.lock:
        for table in (dataproc.clusters, dataproc.jobs, dataproc.batches, dataproc.operations, dataproc.requests):
            table.clear()
        dataproc.calls.clear()
        dataproc.created.clear()
        dataproc.next_cluster, dataproc.creating_polls = "RUNNING", 2
    for name in gcs.list(BUCKET):  # the emulator lives for the session: no metrics left by another test
        gcs.delete(BUCKET, name)
    extra = {"is_anonymous": True, "project": PROJECT, "api_endpoint": dataproc.endpoint}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    monkeypatch.setenv("TRICLOUD_GCP_CONN_ID", CONN_ID)
    monkeypatch.setenv("TRICLOUD_GCS_CODE_URI", CODE_URI)
    monkeypatch.setenv("TRICLOUD_DATAPROC_REGION", REGION)
    monkeypatch.setenv("LAKE_ROOT", LAKE)
    return dataproc


def make_backend(name: str, **overrides):
    return backend_from_settings(name, poll_interval=0.05, **overrides)


def a_job(n: int = 1) -> SparkJob:
    key = job_key("customer_enrichment", "ingest_customers", "scheduled__2026-11-24T10:00:00+00:00", try_number=n)
    return SparkJob(
        key=key,
        name="ingest_customers",
        application=APP,
        args=("--hour", "2026-11-24T10:00:00+00:00"),
        result_uri=f"{LAKE}/_jobs/{key}/metrics.json",
        conf={"spark.sql.session.timeZone": "UTC"},
        env={"LAKE_ROOT": LAKE},
    )


def gs_put(gcs, uri: str, data: bytes) -> None:
    bucket, _, key = uri[len("gs://") :].partition("/")
    gcs.upload(bucket, key, data=data)


def gs_get(gcs, uri: str) -> bytes:
    bucket, _, key = uri[len("gs://") :].partition("/")
    return gcs.download(bucket, key)


def output_uri(cloud, handle) -> str:
    """Where the endpoint says the driver's output goes (read at the fake, not from our handle)."""
    if handle.backend == "dataproc":
        return cloud.job(handle.job_id)["driverOutputResourceUri"]
    return cloud.batch(handle.job_id)["runtimeInfo"]["outputUri"]


def driver_finishes(cloud, gcs, handle, state: str, *, metrics=None, output: str | None = None, details=None):
    """Act as the driver and Dataproc: metrics at the job's result URI, its output where Dataproc keeps it,
    then the job ends at the endpoint in ``state`` (SUCCEEDED / FAILED in our words)."""
    if metrics is not None:
        gs_put(gcs, handle.result_uri, json.dumps(metrics).encode())
    if output is not None:
        gs_put(gcs, output_uri(cloud, handle) + ".000000000", output.encode())
    native = {
        "dataproc": {"SUCCEEDED": "DONE", "FAILED": "ERROR"},
        "dataproc-serverless": {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED"},
    }[handle.backend][state]
    cloud.finish(handle.job_id, native, details)


def submitted(cloud) -> int:
    return cloud.created["job"] + cloud.created["batch"]


@pytest.mark.parametrize("name", BACKENDS)
class TestGcpBackend:
    def test_configuration_picks_the_backend(self, cloud, name, monkeypatch):
        monkeypatch.setenv(BACKEND_ENV, name)
        backend = backend_from_settings()
        assert isinstance(
            backend, {"dataproc": DataprocBackend, "dataproc-serverless": DataprocServerlessBackend}[name]
        )
        assert (backend.settings.project, backend.settings.region) == (PROJECT, REGION)  # project from the connection
        assert backend.settings.api_endpoint == cloud.endpoint

    def test_a_lake_off_gcs_fails_fast_before_anything_is_created(self, cloud, name, monkeypatch, tmp_path):
        monkeypatch.setenv("LAKE_ROOT", "s3://elsewhere/lake")
        backend = make_backend(name)
        with pytest.raises(ValueError, match=r"set LAKE_ROOT=gs://"):
            backend.start(timeout=5)
        assert cloud.created["cluster"] == 0
        monkeypatch.setenv("LAKE_ROOT", LAKE)
        info = backend.start(timeout=5)
        local_job = replace(a_job(), result_uri=str(tmp_path / "m.json"))
        with pytest.raises(ValueError, match="set LAKE_ROOT=gs://"):
            backend.submit(local_job, info.cluster_id)
        assert submitted(cloud) == 0

    def test_submit_stages_code_and_success_returns_the_metrics(self, cloud, gcs, name):
        backend = make_backend(name)
        info = backend.start(timeout=5)
        job = a_job()
        handle = backend.submit(job, info.cluster_id)
        # The staged code on the emulator: the application byte for byte, include/ as a zip.
        assert gs_get(gcs, handle.details["application"]) == Path(APP).read_bytes()
        names = zipfile.ZipFile(io.BytesIO(gs_get(gcs, handle.details["py_files"]))).namelist()
        assert "include/jobs/common.py" in names and not any("__pycache__" in n for n in names)
        # What the endpoint was asked to run.
        if name == "dataproc":
            at_endpoint = cloud.job(handle.job_id)
            spec, props = at_endpoint["pysparkJob"], at_endpoint["pysparkJob"]["properties"]
            assert at_endpoint["placement"]["clusterName"] == info.cluster_id
            assert props["spark.submit.deployMode"] == "cluster"
            assert props["spark.yarn.appMasterEnv.LAKE_ROOT"] == LAKE
        else:
            at_endpoint = cloud.batch(handle.job_id)
            spec, props = at_endpoint["pysparkBatch"], at_endpoint["runtimeConfig"]["properties"]
            assert at_endpoint["environmentConfig"]["executionConfig"]["stagingBucket"] == BUCKET
            assert props["spark.dataproc.driverEnv.LAKE_ROOT"] == LAKE
        assert handle.job_id.endswith(job.key[-12:])  # the id comes from the key (its hash part kept)
        assert at_endpoint["labels"][MANAGED_LABEL] == "true"
        assert spec["mainPythonFileUri"] == handle.details["application"]
        assert spec["pythonFileUris"] == [handle.details["py_files"]]
        assert spec["args"] == [*job.args, "--metrics-file", job.result_uri]
        assert props["spark.sql.session.timeZone"] == "UTC"
        assert backend.job_status(handle).state is JobState.RUNNING
        # The driver's output reaches the task log line by line, and its place is an extra link.
        gs_put(gcs, output_uri(cloud, handle) + ".000000000", b"starting\nrows read: 1234\npart")
        lines, offset = backend.log_lines(handle, 0)
        assert lines == ["starting", "rows read: 1234"]
        assert backend.log_lines(handle, offset) == ([], offset)  # the partial line waits for its end
        assert backend.driver_log(handle) == output_uri(cloud, handle)
        assert backend.console_links(handle)["driver_log"].endswith(output_uri(cloud, handle).removeprefix("gs://"))
        metrics = {"rows": 1234, "rejects": 5, "output": f"{LAKE}/customers/hour=2026-11-24T10"}
        driver_finishes(cloud, gcs, handle, "SUCCEEDED", metrics=metrics)
        assert backend.job_status(handle).state is JobState.SUCCEEDED
        assert backend.read_result(handle) == metrics

    def test_same_key_twice_is_one_job_at_the_endpoint(self, cloud, gcs, name):
        backend = make_backend(name)
        info = backend.start(timeout=5)
        job = a_job()
        first = backend.submit(job, info.cluster_id)
        again = make_backend(name).submit(job, info.cluster_id)  # a retry in another worker process
        assert again.job_id == first.job_id
        driver_finishes(cloud, gcs, first, "SUCCEEDED", metrics={"rows": 1})
        assert make_backend(name).submit(job, info.cluster_id).job_id == first.job_id
        assert submitted(cloud) == 1
        assert cloud.calls["jobs.submit"] + cloud.calls["batches.create"] == 1  # never even asked twice
        other = backend.submit(a_job(2), info.cluster_id)  # the next try after a failure is a new job
        assert other.job_id != first.job_id and submitted(cloud) == 2

    def test_failed_job_reports_the_drivers_error_and_leaves_nothing_running(self, cloud, gcs, name):
        backend = make_backend(name)
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        driver_finishes(cloud, gcs, handle, "FAILED", output=TRACEBACK, details="Job failed with message [ValueError]")
        status = backend.job_status(handle)
        assert status.state is JobState.FAILED
        error = backend.driver_error(handle, status)
        assert "Job failed with message [ValueError]" in error
        assert "ValueError: hour 2026-11-24T25:00 is not an hour" in error
        assert output_uri(cloud, handle) in error
        assert backend.read_result(handle) == {}
        # The teardown after the failed run leaves nothing running at the endpoint.
        assert backend.stop(cluster_id=info.cluster_id) is (name == "dataproc")
        assert backend.status().alive is (name == "dataproc-serverless")  # a cluster: being deleted, then gone
        assert cloud.live_clusters() == {}
        states = [j["status"]["state"] for j in cloud.jobs.values()] + [b["state"] for b in cloud.batches.values()]
        assert states == [{"dataproc": "ERROR", "dataproc-serverless": "FAILED"}[name]]

    def test_cancel_stops_the_job_at_the_endpoint(self, cloud, name):
        backend = make_backend(name)
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        assert backend.job_status(handle).state is JobState.RUNNING
        backend.cancel(handle)  # what the operator's on_kill calls
        assert backend.job_status(handle).state is JobState.CANCELLED
        cancels = cloud.calls["jobs.cancel"] + cloud.calls["operations.cancel"]
        backend.cancel(handle)  # already ended: left as it is, nothing asked
        assert cloud.calls["jobs.cancel"] + cloud.calls["operations.cancel"] == cancels == 1

    def test_deferrable_uses_the_providers_trigger_with_cancel_on_kill(self, cloud, name):
        """Against Google's endpoint the provider's trigger (its async gRPC hook) waits and cancels on kill;
        with a custom REST endpoint that hook cannot follow, so the task polls instead (no trigger)."""
        backend = make_backend(name)
        handle = backend.submit(a_job(), backend.start(timeout=5).cluster_id)
        assert backend.trigger(handle, poll_interval=5) is None
        google = type(backend)(replace(backend.settings, api_endpoint=None))
        classpath, kwargs = google.trigger(handle, poll_interval=5).serialize()
        assert classpath.startswith("airflow.providers.google.cloud.triggers.dataproc.")
        assert (kwargs["project_id"], kwargs["region"]) == (PROJECT, REGION)
        assert kwargs.get("job_id", kwargs.get("batch_id")) == handle.job_id
        if name == "dataproc":
            assert kwargs["cancel_on_kill"] is True


class TestDataprocCluster:
    def test_start_creates_with_labels_and_idle_ttl_then_reuses(self, cloud):
        first = make_backend("dataproc", created_by="customer_enrichment/run-1").start(timeout=5)
        second = make_backend("dataproc").start(timeout=5)
        assert first.started is True and second.started is False
        assert second.cluster_id == first.cluster_id == "tricloud"
        assert second.details["cluster_uuid"] == first.details["cluster_uuid"]
        assert cloud.created["cluster"] == 1
        cluster = next(iter(cloud.clusters.values()))
        assert cluster["labels"][MANAGED_LABEL] == "true"
        assert cluster["labels"]["tricloud-created-by"] == "customer_enrichment-run-1"
        assert cluster["config"]["lifecycleConfig"]["idleDeleteTtl"] == "1800s"
        assert cluster["config"]["configBucket"] == BUCKET

    def test_teardown_deletes_only_its_own_and_is_idempotent(self, cloud):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        assert backend.stop(cluster_id=info.cluster_id) is True
        assert backend.stop(cluster_id=info.cluster_id) is False  # being deleted / not found: done
        assert cloud.live_clusters() == {}
        assert backend.stop(cluster_id=None) is False
        cloud.add_cluster(PROJECT, REGION, "team-x", "RUNNING")  # someone else's, unlabelled
        assert backend.stop(cluster_id="team-x") is False
        assert cloud.live_clusters() == {"team-x": "RUNNING"} and cloud.calls["clusters.delete"] == 1

    def test_teardown_leaves_a_cluster_another_run_still_uses(self, cloud, gcs):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        assert backend.stop(cluster_id=info.cluster_id) is False
        assert cloud.live_clusters() == {"tricloud": "RUNNING"}
        driver_finishes(cloud, gcs, handle, "SUCCEEDED")
        assert backend.stop(cluster_id=info.cluster_id) is True

    def test_a_cluster_that_ends_in_error_is_deleted_not_used(self, cloud):
        cloud.next_cluster = "ERROR"
        with pytest.raises(RuntimeError, match=r"did not start .*is ERROR.*it was deleted"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 1
        assert cloud.live_clusters() in ({}, {"tricloud": "DELETING"})

    def test_a_broken_tricloud_cluster_is_replaced_not_retried_into(self, cloud):
        broken = cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR", labels={MANAGED_LABEL: "true"})
        info = make_backend("dataproc").start(timeout=5)
        assert info.started is True and info.details["cluster_uuid"] != broken["clusterUuid"]
        assert cloud.calls["clusters.delete"] == 1 and cloud.live_clusters() == {"tricloud": "RUNNING"}

    def test_someone_elses_broken_cluster_is_an_error_naming_the_fix(self, cloud):
        cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR")
        with pytest.raises(RuntimeError, match="TRICLOUD_DATAPROC_CLUSTER_NAME"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 0 and cloud.created["cluster"] == 1

    def test_a_cluster_deleted_while_being_created_is_never_a_success(self, cloud):
        cloud.next_cluster = "VANISH"
        with pytest.raises(RuntimeError, match="deleted while it was being created: not a success.*it is gone"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.live_clusters() == {}
        with pytest.raises(RuntimeError, match="no running Dataproc cluster named 'tricloud'"):
            make_backend("dataproc").submit(a_job())
        assert submitted(cloud) == 0

    def test_serverless_starts_and_stops_nothing(self, cloud):
        backend = make_backend("dataproc-serverless")
        info = backend.start(timeout=5)
        assert info.started is False and info.cluster_id is None
        assert backend.stop(cluster_id=None) is False
        assert cloud.created["cluster"] == 0 and sum(cloud.calls.values()) == 0


class TestSettings:
    def test_required_settings_are_named(self, monkeypatch):
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "google_cloud_platform"}))
        monkeypatch.setenv("TRICLOUD_GCP_CONN_ID", CONN_ID)
        for var in ("TRICLOUD_GCS_CODE_URI", "TRICLOUD_DATAPROC_REGION", "TRICLOUD_GCP_PROJECT"):
            monkeypatch.delenv(var, raising=False)
        for name in BACKENDS:
            with pytest.raises(ValueError, match="TRICLOUD_GCS_CODE_URI is not set: set it to gs://"):
                backend_from_settings(name)
        monkeypatch.setenv("TRICLOUD_GCS_CODE_URI", "s3://wrong/cloud")
        with pytest.raises(ValueError, match="TRICLOUD_GCS_CODE_URI='s3://wrong/cloud' must be a GCS URI"):
            backend_from_settings("dataproc")
        monkeypatch.setenv("TRICLOUD_GCS_CODE_URI", CODE_URI)
        with pytest.raises(ValueError, match="TRICLOUD_DATAPROC_REGION is not set"):
            backend_from_settings("dataproc")
        monkeypatch.setenv("TRICLOUD_DATAPROC_REGION", REGION)
        with pytest.raises(ValueError, match="TRICLOUD_GCP_PROJECT is not set and connection 'gcp_tricloud_test'"):
            backend_from_settings("dataproc-serverless")
        monkeypatch.setenv("TRICLOUD_GCP_PROJECT", PROJECT)
        assert backend_from_settings("dataproc").settings.project == PROJECT

    def test_a_missing_connection_names_the_variable(self, monkeypatch):
        monkeypatch.setenv("TRICLOUD_GCS_CODE_URI", CODE_URI)
        monkeypatch.setenv("TRICLOUD_DATAPROC_REGION", REGION)
        monkeypatch.setenv("TRICLOUD_GCP_CONN_ID", "gcp_nowhere")
        with pytest.raises(ValueError, match="set AIRFLOW_CONN_GCP_NOWHERE"):
            backend_from_settings("dataproc")

    def test_idle_ttl_bounds_and_unknown_overrides(self, monkeypatch):
        monkeypatch.setenv("TRICLOUD_GCS_CODE_URI", CODE_URI)
        monkeypatch.setenv("TRICLOUD_DATAPROC_REGION", REGION)
        monkeypatch.setenv("TRICLOUD_GCP_PROJECT", PROJECT)
        monkeypatch.setenv("TRICLOUD_DATAPROC_IDLE_DELETE_TTL", "60")
        with pytest.raises(ValueError, match="TRICLOUD_DATAPROC_IDLE_DELETE_TTL=60: Dataproc accepts 600"):
            backend_from_settings("dataproc")
        monkeypatch.delenv("TRICLOUD_DATAPROC_IDLE_DELETE_TTL")
        with pytest.raises(ValueError, match="unknown setting"):
            backend_from_settings("dataproc", cluster_nmae="typo")
