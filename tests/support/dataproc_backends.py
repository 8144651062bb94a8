"""What the Dataproc backend tests share (tests/integration/dataproc/): the settings they use, the job
they submit, and acting as the driver and Dataproc where nothing runs.

Control plane: the real google-cloud-dataproc client (REST transport, anonymous credentials) through the
provider's ``DataprocHook`` — our :class:`~tricloud.cluster.gcp.DataprocEndpointHook` only adds the
connection's ``api_endpoint`` extra — against tests/support/dataproc_fake.py (Dataproc REST API v1),
which scripts cluster, job and batch states and counts what it is asked. Staging, metrics and driver
output: the test world's GCS emulator through ``GCSHook``. The fixtures (``dataproc``, ``gcs``, ``cloud``)
are in tests/integration/dataproc/conftest.py.

What a running driver would do, the test does, visibly (:func:`driver_finishes`): it writes the metrics
object at the job's ``--metrics-file`` and the driver output where Dataproc puts it
(``driverOutputResourceUri`` / ``runtimeInfo.outputUri`` + ``.000000000``), then ends the job at the
fake. Spark does not run here: this machine's Spark has no GCS connector (the lake layer on ``gs://`` is
tested in tests/integration/test_lake_on_s3.py and test_lease_on_s3.py, their [gs] cases).
"""

from __future__ import annotations

import json

from tests.support.cloud_jobs import ingest_customers_job
from tricloud.cluster import SparkJob, backend_from_settings

PROJECT, REGION = "tricloud-test", "europe-west1"
CONN_ID = "gcp_tricloud_test"
BUCKET = "tricloud-dataproc-code"
CODE_URI = f"gs://{BUCKET}/deploy"
LAKE = f"gs://{BUCKET}/lake"
BACKENDS = ("dataproc", "dataproc-serverless")


def make_backend(name: str, **overrides):
    """Backend ``name`` from the settings the ``cloud`` fixture set, polling every 50 ms (the fake answers at once)."""
    return backend_from_settings(name, poll_interval=0.05, **overrides)


def a_job(n: int = 1) -> SparkJob:
    """Try ``n`` of the hour's ``ingest_customers`` job on the ``gs://`` lake."""
    return ingest_customers_job(LAKE, try_number=n)


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
    """Jobs and batches really created at the fake (counted there, not by our code)."""
    return cloud.created["job"] + cloud.created["batch"]
