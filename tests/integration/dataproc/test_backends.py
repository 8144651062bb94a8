"""The ``dataproc`` and ``dataproc-serverless`` backends' common interface, through the google provider's hooks
against local fakes: settings, staging, submission (one job per key), results, failures, cancel, the
deferrable trigger and the driver output in the task log. How the fakes stand in for Dataproc and the driver:
tests/support/dataproc_backends.py. Our code is never patched.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.cloud_jobs import APP, assert_one_job_per_key
from tests.support.dataproc_backends import (
    BACKENDS,
    BUCKET,
    CODE_URI,
    CONN_ID,
    LAKE,
    PROJECT,
    REGION,
    a_job,
    driver_finishes,
    gs_get,
    gs_put,
    make_backend,
    output_uri,
    submitted,
)
from tricloud.cluster import BACKEND_ENV, JobState, backend_from_settings
from tricloud.cluster.dataproc import DataprocBackend
from tricloud.cluster.dataproc_serverless import DataprocServerlessBackend
from tricloud.cluster.gcp import MANAGED_LABEL
from tricloud.cluster.gcs_output import reads_after

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "ingest_customers.py", line 88, in main\n'
    "ValueError: hour 2026-11-24T25:00 is not an hour"
)


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
            assert at_endpoint["placement"]["clusterName"] == info.cluster_id.split("/")[0]
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
        """One job / batch per key, counted by the fake; and the endpoint is asked once per key."""
        assert_one_job_per_key(
            lambda: make_backend(name),
            LAKE,
            succeed=lambda backend, handle: driver_finishes(cloud, gcs, handle, "SUCCEEDED", metrics={"rows": 1}),
            jobs_at_endpoint=lambda backend, cluster_id, key: submitted(cloud),
            start_timeout=5,
        )
        assert submitted(cloud) == 2  # the two tries' jobs
        assert cloud.calls["jobs.submit"] + cloud.calls["batches.create"] == 2  # never even asked twice for one key

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
        assert (
            classpath
            == {
                "dataproc": "airflow.providers.google.cloud.triggers.dataproc.DataprocSubmitTrigger",
                "dataproc-serverless": "tricloud.cluster.triggers.DataprocBatchTrigger",  # the provider's has no on_kill
            }[name]
        )
        assert (kwargs["project_id"], kwargs["region"]) == (PROJECT, REGION)
        assert kwargs.get("job_id", kwargs.get("batch_id")) == handle.job_id
        if name == "dataproc":
            assert kwargs["cancel_on_kill"] is True

    def test_cancel_racing_with_the_jobs_end_is_not_an_error(self, cloud, name):
        """The job ends between our read of its state and the cancel: Dataproc refuses the cancel
        (FAILED_PRECONDITION), and there is nothing left to cancel."""
        backend = make_backend(name)
        handle = backend.submit(a_job(), backend.start(timeout=5).cluster_id)
        cloud.end_after_get(handle.job_id, {"dataproc": "DONE", "dataproc-serverless": "SUCCEEDED"}[name])
        backend.cancel(handle)  # reads RUNNING, then the job ends, then the cancel is refused
        assert cloud.calls["jobs.cancel"] + cloud.calls["operations.cancel"] == 1
        assert backend.job_status(handle).state is JobState.SUCCEEDED

    def test_the_task_log_reads_the_driver_output_after_its_offset_only(self, cloud, gcs, name):
        backend = make_backend(name)
        handle = backend.submit(a_job(), backend.start(timeout=5).cluster_id)
        out = output_uri(cloud, handle)
        gs_put(gcs, out + ".000000000", b"one\ntw")
        gs_put(gcs, out + ".000000001", b"o\nthree\n")
        lines, offset = backend.log_lines(handle, 0)
        assert (lines, offset) == (["one", "two", "three"], 14)
        gs_put(gcs, out + ".000000002", b"four\n")
        assert backend.log_lines(handle, offset) == (["four"], 19)
        # What is asked for: only the objects (and the part of the first) after the offset.
        sizes = [("a", 10), ("b", 10), ("c", 5)]
        assert reads_after(sizes, 15) == [("b", 5), ("c", 0)]
        assert reads_after(sizes, 20) == [("c", 0)]
        assert reads_after(sizes, 25) == [] and reads_after(sizes, 0) == [("a", 0), ("b", 0), ("c", 0)]


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
