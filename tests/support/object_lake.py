"""What the object-lake integration tests share (tests/integration/test_lake_on_s3.py and
test_object_lake_reruns.py): the hour they run, the real ingest jobs that fill it, committing the jobs'
output to an ``s3://`` / ``gs://`` lake, and reading the lake's bucket independently of the code under test.

The fixtures built from these (``job_output``: the jobs' local lake, once per package; ``s3_lake``: a fresh
bucket as the primary lake, once per store) are in tests/integration/conftest.py. Counts and SHA-256
digests are computed here independently: objects are read back with boto3 or google-cloud-storage
(:class:`RawBucket`), pointers parsed by hand, Parquet footers read from the downloaded bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from include import lake
from include.lake_commit import ObjectLake

ROOT = Path(__file__).resolve().parents[2]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
INGESTED = (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS, lake.CLEAN_PRODUCTS, lake.REJECTS_PRODUCTS)
#: Lake scheme -> the replica cloud that holds it (gets no replica of its own).
PRIMARY = {"s3": "s3", "gs": "gcs"}


def run_job(name: str, root: Path | str, **extra_env: str) -> None:
    """Run the real ingest job ``include.jobs.<name>`` for :data:`HOUR` (spark-submit's ``main`` on
    ``local[1]``) against the lake ``root``; fails the test with the job's stderr when it fails."""
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": "--master local[1] --conf spark.ui.enabled=false pyspark-shell"}
    env.update(PYTHONPATH=str(ROOT), **extra_env)
    args = ["--lake-root", str(root), "--start", HOUR.isoformat(), "--end", (HOUR + lake.HOUR).isoformat()]
    done = subprocess.run(
        [sys.executable, "-m", f"include.jobs.{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


class RawBucket:
    """The lake's bucket through the cloud's own SDK (boto3, google-cloud-storage), none of our code: what
    the assertions read, and how the tests damage the primary."""

    def __init__(self, scheme: str, bucket: str) -> None:
        self.scheme, self.bucket = scheme, bucket
        if scheme == "s3":
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self.client = S3Hook(aws_conn_id="aws_default").get_conn()
        else:
            from google.cloud import storage

            self.client = storage.Client()  # anonymous on STORAGE_EMULATOR_HOST

    def keys(self) -> set[str]:
        if self.scheme == "gs":
            return {b.name for b in self.client.list_blobs(self.bucket)}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def get(self, key: str) -> bytes:
        if self.scheme == "gs":
            return self.client.bucket(self.bucket).blob(key).download_as_bytes()
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        if self.scheme == "gs":
            self.client.bucket(self.bucket).blob(key).upload_from_string(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, keys) -> None:
        for key in keys:
            if self.scheme == "gs":
                self.client.bucket(self.bucket).blob(key).delete()
            else:
                self.client.delete_object(Bucket=self.bucket, Key=key)


def replicas(stores, the_lake) -> list:
    """The replica stores of the clouds that do not hold the lake, in ``CLOUDS`` order."""
    return [s for s in stores if s.name != the_lake.cloud]


def commit_job_output(job_root: Path, the_lake: ObjectLake) -> None:
    """Commit the jobs' clean and rejects partitions to the object lake (what a job on a cluster would do)."""
    for ds in INGESTED:
        part = lake.partition(job_root, ds, HOUR)
        staging = the_lake.staging_dir(part)
        shutil.copytree(part.path, staging)
        the_lake.publish(part.relpath, staging)


# -- independent reads: the cloud's SDK and hand-parsed pointers, none of the code under test ---------------
def keys(the_lake) -> set[str]:
    return the_lake.raw.keys()


def get(the_lake, key: str) -> bytes:
    return the_lake.raw.get(key)


def pointer(the_lake, relpath: str) -> dict:
    return json.loads(get(the_lake, f"prod/{relpath}/_commit.json"))


def committed_keys(the_lake, relpath: str) -> set[str]:
    p = pointer(the_lake, relpath)
    return {f"prod/{relpath}/_commit.json"} | {
        f"prod/{relpath}/_attempts/{p['attempt']}.{f['name']}" for f in p["files"]
    }


def lake_bytes(the_lake, rel: str) -> bytes:
    """The bytes of a logical lake file, found through its partition's pointer."""
    relpath, name = rel.rsplit("/", 1)
    return get(the_lake, f"prod/{relpath}/_attempts/{pointer(the_lake, relpath)['attempt']}.{name}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_bytes(store, key: str) -> bytes:
    buf = io.BytesIO()
    store.download_to(key, buf)
    return buf.getvalue()


def rows(data: bytes) -> int:
    return pq.read_metadata(pa.BufferReader(data)).num_rows
