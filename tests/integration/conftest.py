"""Fixtures shared by the replication tests, and by the object-lake tests (test_lake_on_s3.py,
test_object_lake_reruns.py; their helpers: tests/support/object_lake.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.object_lake import HOUR, PRIMARY, RawBucket, run_job

CLOUDS = ("s3", "gcs", "azure")


@pytest.fixture
def stores(emulators):
    """One store per cloud on the session's emulators, in a fresh bucket/container of their own."""
    from tricloud.replication.stores import make_store

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    out = [make_store(c, bucket) for c in CLOUDS]
    for s in out:
        s.ensure_bucket()
    return out


@pytest.fixture(scope="package")
def job_output(tmp_path_factory) -> Path:
    """A local lake holding one hour as the real ingest jobs wrote it (raw input generated). Package scope:
    the two jobs run once for every module that uses it."""
    from include.generate import generate_hour

    root = tmp_path_factory.mktemp("job-lake")
    generate_hour(root, HOUR, rows=3000, products=300)
    run_job("ingest_customers", root)
    run_job("ingest_products", root)
    return root


@pytest.fixture(params=["s3", "gs"])
def s3_lake(request, emulators, monkeypatch):
    """A fresh bucket as the primary lake, ``LAKE_ROOT=s3://<bucket>/prod`` or ``gs://<bucket>/prod``, opened
    as the DAG does (``tricloud.lake.lake``: the lake connection's pyarrow file system). ``.raw`` reads the
    bucket independently; ``.cloud`` names the replica cloud that holds the lake."""
    from include.lake_commit import ObjectLake
    from tricloud.lake import lake as open_lake
    from tricloud.replication.stores import make_store

    scheme = request.param
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    make_store(PRIMARY[scheme], bucket).ensure_bucket()
    monkeypatch.setenv("LAKE_ROOT", f"{scheme}://{bucket}/prod")
    the_lake = open_lake()
    assert isinstance(the_lake, ObjectLake)
    the_lake.raw = RawBucket(scheme, bucket)
    the_lake.cloud = PRIMARY[scheme]
    return the_lake
