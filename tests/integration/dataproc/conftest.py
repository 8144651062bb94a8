"""Fixtures of the Dataproc backend tests: the fake control plane, the code bucket, the backends' settings."""

from __future__ import annotations

import json

import pytest

from tests.support.dataproc_backends import BUCKET, CODE_URI, CONN_ID, LAKE, PROJECT, REGION
from tests.support.dataproc_fake import fake_dataproc


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
