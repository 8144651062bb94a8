"""The ``dataproc`` and ``dataproc-serverless`` backends through the google provider's hooks, against local fakes.

Control plane: the real google-cloud-dataproc client (REST transport, anonymous credentials) through the
provider's ``DataprocHook`` — our :class:`~tricloud.cluster.gcp.DataprocEndpointHook` only adds the
connection's ``api_endpoint`` extra — against tests/support/dataproc_fake.py (Dataproc REST API v1),
which scripts cluster, job and batch states and counts what it is asked. Staging, metrics and driver
output: the test world's GCS emulator through ``GCSHook``.

What a running driver would do, the test does, visibly (``driver_finishes``): it writes the metrics
object at the job's ``--metrics-file`` and the driver output where Dataproc puts it
(``driverOutputResourceUri`` / ``runtimeInfo.outputUri`` + ``.000000000``), then ends the job at the
fake. Spark does not run here: this machine's Spark has no GCS connector (the lake layer on ``gs://`` is
tested in tests/integration/test_lake_on_s3.py and test_lease_on_s3.py, their [gs] cases). Our code is never patched.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.dataproc_fake import fake_dataproc
from tricloud.cluster import BACKEND_ENV, JobState, SparkJob, backend_from_settings, job_key
from tricloud.cluster.code_bundle import project_root
from tricloud.cluster.dataproc import DataprocBackend
from tricloud.cluster.dataproc_serverless import DataprocServerlessBackend
from tricloud.cluster.gcp import MANAGED_LABEL, request_id
from tricloud.cluster.gcs_output import reads_after
from tricloud.cluster.triggers import DataprocBatchTrigger

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
        dataproc.race_next_create = False
        dataproc.ending.clear()
        dataproc.hidden_jobs.clear()
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


class TestDataprocCluster:
    def test_a_cluster_in_error_due_to_update_takes_jobs_and_is_kept(self, cloud):
        """ERROR_DUE_TO_UPDATE: an update failed, but the cluster still takes jobs (google-cloud-dataproc's
        ``ClusterStatus.State``): reused, never deleted."""
        kept = cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR_DUE_TO_UPDATE", labels={MANAGED_LABEL: "true"})
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        assert info.started is False and info.details["cluster_uuid"] == kept["clusterUuid"]
        assert backend.submit(a_job(), info.cluster_id).job_id and submitted(cloud) == 1
        assert cloud.calls["clusters.delete"] == 0 and cloud.created["cluster"] == 1

    def test_a_broken_cluster_with_active_jobs_is_not_deleted(self, cloud):
        cloud.add_cluster(PROJECT, REGION, "tricloud", "RUNNING", labels={MANAGED_LABEL: "true"})
        handle = make_backend("dataproc").submit(a_job(), "tricloud")  # another run's job, still running
        with cloud.lock:
            next(iter(cloud.clusters.values()))["status"] = {"state": "ERROR", "detail": "scripted ERROR"}
        with pytest.raises(RuntimeError, match=r"is ERROR but still has 1 active job\(s\) \(" + handle.job_id):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 0 and cloud.live_clusters() == {"tricloud": "ERROR"}
        with pytest.raises(Exception, match="is in state ERROR"):  # Dataproc takes no job there either
            make_backend("dataproc").submit(a_job(2), "tricloud")

    def test_a_late_teardown_never_deletes_a_new_incarnation_of_the_name(self, cloud):
        """Our cluster was deleted (its idle TTL), another run created one of the same name: our teardown,
        late, must leave theirs (the delete names our uuid; Dataproc refuses it for theirs)."""
        ours = make_backend("dataproc", created_by="run-1").start(timeout=5)
        with cloud.lock:
            cloud.clusters.clear()  # the idle TTL
        theirs = make_backend("dataproc", created_by="run-2").start(timeout=5)
        assert theirs.started is True and theirs.cluster_id != ours.cluster_id
        assert make_backend("dataproc").stop(cluster_id=ours.cluster_id) is False
        assert cloud.live_clusters() == {"tricloud": "RUNNING"}
        assert make_backend("dataproc").stop(cluster_id=theirs.cluster_id) is True  # theirs, by its own id
        assert make_backend("dataproc").stop(cluster_id="tricloud") is False  # a bare name still accepted

    def test_a_failed_start_deletes_only_the_incarnation_it_saw(self, cloud):
        cloud.next_cluster = "REPLACED"  # ours deleted while creating, another run's created meanwhile
        with pytest.raises(RuntimeError, match="deleted while it was being created: not a success.*it is gone"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.live_clusters() == {"tricloud": "CREATING"}  # theirs, coming up, untouched
        assert cloud.calls["clusters.delete"] == 1  # ours asked for by its uuid, refused for theirs

    def test_two_runs_creating_at_once_share_one_cluster(self, cloud):
        """Both saw NOT_FOUND, the other's create landed first: ours is ALREADY_EXISTS, and theirs is reused."""
        cloud.race_next_create = True
        info = make_backend("dataproc", created_by="run-2").start(timeout=5)
        assert info.started is False  # not ours: our teardown will not be asked for
        assert cloud.created["cluster"] == 1 and cloud.live_clusters() == {"tricloud": "RUNNING"}
        assert info.details["cluster_uuid"] == next(iter(cloud.clusters.values()))["clusterUuid"]

    def test_the_create_request_id_is_stable_and_a_stale_one_does_not_block_a_new_cluster(self, cloud):
        """The create's request id comes from the name and ``created_by``: the same create sent again is one
        request. Dataproc answers a repeated id with the first operation; when that cluster is gone (created
        and deleted in this process), the create is sent again and a cluster comes up."""
        first = make_backend("dataproc", created_by="run-1").start(timeout=5)
        assert make_backend("dataproc").stop(cluster_id=first.cluster_id) is True
        assert make_backend("dataproc").get_cluster() is None  # gone
        second = make_backend("dataproc", created_by="run-1").start(timeout=5)
        assert second.started is True and second.cluster_id != first.cluster_id
        assert cloud.created["cluster"] == 2
        assert cloud.calls["clusters.create"] == 3  # the second start's first create was the same request
        assert request_id("create", "tricloud", "run-1", "") in cloud.requests

    def test_a_submit_conflict_without_a_job_is_a_clear_error(self, cloud):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        cloud.hidden_jobs.add(handle.job_id)  # SubmitJob says ALREADY_EXISTS, GetJob does not find it
        cloud.requests.clear()  # past Dataproc's request-id window: the submit is not answered as a repeat
        with pytest.raises(RuntimeError, match="exists .* but GetJob does not find it.*TRICLOUD_DATAPROC_REGION"):
            make_backend("dataproc").submit(a_job(), info.cluster_id)
        assert submitted(cloud) == 1

    def test_start_creates_with_labels_and_idle_ttl_then_reuses(self, cloud):
        first = make_backend("dataproc", created_by="customer_enrichment/run-1").start(timeout=5)
        second = make_backend("dataproc").start(timeout=5)
        assert first.started is True and second.started is False
        assert second.cluster_id == first.cluster_id == f"tricloud/{first.details['cluster_uuid']}"
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

    def test_killing_a_deferred_batch_cancels_it(self, cloud):
        """The provider's ``DataprocBatchTrigger`` has no ``on_kill``; ours cancels the batch when a user kills
        the deferred task (the trigger as the triggerer rebuilds it from its serialised form)."""
        backend = make_backend("dataproc-serverless")
        handle = backend.submit(a_job(), None)
        assert backend.job_status(handle).state is JobState.RUNNING
        made = DataprocBatchTrigger(
            batch_id=handle.job_id, project_id=PROJECT, region=REGION, gcp_conn_id=CONN_ID, api_endpoint=cloud.endpoint
        )
        classpath, kwargs = made.serialize()
        assert classpath == "tricloud.cluster.triggers.DataprocBatchTrigger"
        trigger = DataprocBatchTrigger(**kwargs)
        asyncio.run(trigger.on_kill())
        assert cloud.batch(handle.job_id)["state"] == "CANCELLED" and cloud.calls["operations.cancel"] == 1
        asyncio.run(trigger.on_kill())  # already ended: nothing asked
        assert cloud.calls["operations.cancel"] == 1

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
