"""An hour with ``LAKE_ROOT=s3://…`` on the S3 emulator (moto) and with ``LAKE_ROOT=gs://…`` on the GCS
emulator (gcp-storage-emulator), for real: enrichment, warehouse load, replication to the two other clouds,
verify, restore after the primary's objects are deleted, re-runs, and a reader racing a re-run. Every test
runs once per store (``[s3]``, ``[gs]``).

The clean partitions come from the real ingest jobs (spark-submit's ``main`` on ``local[1]``), which write a
local directory: Spark cannot reach s3:// on this machine (no hadoop-aws jars). Their output is committed to
the S3 lake through the lake's commit protocol, the step a job running on a cluster with the S3 connector
would take (docs/design.md "The lake on object storage"). Everything else runs as in production. Counts
and SHA-256 digests are computed here independently: objects are read back with boto3 or
google-cloud-storage (:class:`RawBucket`), pointers parsed by hand, Parquet footers read from the
downloaded bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake, replication
from include.enrichment import enrich_hour
from include.generate import generate_hour
from include.lake_commit import ObjectLake, read_tables
from include.warehouse import upsert_hour

ROOT = Path(__file__).resolve().parents[2]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
INGESTED = (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS, lake.CLEAN_PRODUCTS, lake.REJECTS_PRODUCTS)


def run_job(name: str, root: Path | str, **extra_env: str) -> None:
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": "--master local[1] --conf spark.ui.enabled=false pyspark-shell"}
    env.update(PYTHONPATH=str(ROOT), **extra_env)
    args = ["--lake-root", str(root), "--start", HOUR.isoformat(), "--end", (HOUR + lake.HOUR).isoformat()]
    done = subprocess.run(
        [sys.executable, "-m", f"include.jobs.{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def job_output(tmp_path_factory) -> Path:
    """A local lake holding one hour as the real ingest jobs wrote it (raw input generated)."""
    root = tmp_path_factory.mktemp("job-lake")
    generate_hour(root, HOUR, rows=3000, products=300)
    run_job("ingest_customers", root)
    run_job("ingest_products", root)
    return root


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


#: Lake scheme -> the replica cloud that holds it (gets no replica of its own).
PRIMARY = {"s3": "s3", "gs": "gcs"}


@pytest.fixture(params=["s3", "gs"])
def s3_lake(request, emulators, monkeypatch):
    """A fresh bucket as the primary lake, ``LAKE_ROOT=s3://<bucket>/prod`` or ``gs://<bucket>/prod``, opened
    as the DAG does (``tricloud.lake.lake``: the lake connection's pyarrow file system). ``.raw`` reads the
    bucket independently; ``.cloud`` names the replica cloud that holds the lake."""
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


class TestAnHourOnS3:
    """The hour on an object-store lake (the class name predates gs://: node ids in docs/reliability.md)."""

    def test_enrich_load_replicate_verify_and_restore_after_the_primary_is_deleted(
        self, job_output, s3_lake, stores, tmp_path
    ):
        gcs, azure = replicas(stores, s3_lake)
        commit_job_output(job_output, s3_lake)

        summary = enrich_hour(s3_lake, HOUR)
        # Counts from the jobs' own local files, read directly.
        clean_orders = pq.read_table(lake.partition(job_output, lake.CLEAN_CUSTOMERS, HOUR).path / "part-00000.parquet")
        assert summary["orders_in"] == clean_orders.num_rows > 0
        enriched_rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        enriched = pq.read_table(pa.BufferReader(lake_bytes(s3_lake, f"{enriched_rel}/part-00000.parquet")))
        rejected = pq.read_table(
            pa.BufferReader(
                lake_bytes(s3_lake, f"{lake.partition('/', lake.REJECTS_ENRICHMENT, HOUR).relpath}/part-00000.parquet")
            )
        )
        products = set(
            pq.read_table(lake.partition(job_output, lake.CLEAN_PRODUCTS, HOUR).path / "part-00000.parquet")
            .column("product_id")
            .to_pylist()
        )
        orders = clean_orders.select(["customer_id", "product_id"]).to_pylist()
        joined = [o["customer_id"] for o in orders if o["product_id"] in products]
        assert sum(enriched.column("order_count").to_pylist()) == len(joined) == summary["orders_joined"]
        assert rejected.num_rows == len(orders) - len(joined) > 0
        assert enriched.num_rows == len(set(joined)) == summary["customers_out"]
        committed_summary = json.loads(lake_bytes(s3_lake, f"{enriched_rel}/{lake.SUMMARY_FILE}"))
        assert committed_summary == json.loads(json.dumps(summary, default=str))

        db = sqlite3.connect(tmp_path / "warehouse.db")
        assert upsert_hour(db, "?", s3_lake, HOUR)["rows_loaded"] == enriched.num_rows
        assert db.execute("SELECT sum(order_count) FROM customer_hourly").fetchone()[0] == sum(
            enriched.column("order_count").to_pylist()
        )

        # What the hour holds: the jobs' files as they wrote them, plus enrichment's three.
        hour_files = {
            str(f.relative_to(job_output))
            for ds in INGESTED
            for f in lake.partition(job_output, ds, HOUR).path.iterdir()
            if not f.name.startswith(".")
        } | {
            f"{enriched_rel}/part-00000.parquet",
            f"{enriched_rel}/{lake.SUMMARY_FILE}",
            f"{lake.partition('/', lake.REJECTS_ENRICHMENT, HOUR).relpath}/part-00000.parquet",
        }
        for store in (gcs, azure):
            res = replication.replicate_hour(store, s3_lake, HOUR)
            assert res.uploaded == res.objects == len(hour_files)
        assert replication.verify_hour([gcs, azure], s3_lake, HOUR).problems == []

        manifest = json.loads(get(s3_lake, f"prod/{replication.manifest_key(HOUR)}"))
        assert {f["path"] for f in manifest["files"]} == hour_files
        original = {f["path"]: lake_bytes(s3_lake, f["path"]) for f in manifest["files"]}
        for f in manifest["files"]:
            assert sha(original[f["path"]]) == f["sha256"]
            assert sha(store_bytes(gcs, f["path"])) == sha(store_bytes(azure, f["path"])) == f["sha256"]
        assert manifest["rows"]["enriched/customer_hourly"] == enriched.num_rows

        # The primary is lost: every object of the lake bucket deleted. Azure alone brings it back.
        s3_lake.raw.delete(keys(s3_lake))
        assert keys(s3_lake) == set()
        restored = replication.restore_hour(azure, HOUR, lake_root=s3_lake)
        assert (restored.objects, restored.target) == (len(hour_files), "lake")
        assert restored.bytes_restored == sum(len(b) for b in original.values())
        for rel, data in original.items():
            assert lake_bytes(s3_lake, rel) == data, rel
            if rel.endswith(".parquet"):
                assert rows(lake_bytes(s3_lake, rel)) == rows(data)
        partitions = {rel.rsplit("/", 1)[0] for rel in original}
        assert keys(s3_lake) == set().union(*(committed_keys(s3_lake, p) for p in partitions)) | {
            f"prod/{replication.manifest_key(HOUR)}"
        }
        assert replication.verify_hour([gcs, azure], s3_lake, HOUR).problems == []
        assert upsert_hour(db, "?", s3_lake, HOUR)["rows_loaded"] == enriched.num_rows

    def test_verify_recommits_a_partition_whose_pointer_is_gone(self, job_output, s3_lake, stores):
        gcs, azure = replicas(stores, s3_lake)
        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)
        for store in (gcs, azure):
            replication.replicate_hour(store, s3_lake, HOUR)
        rel = lake.partition("/", lake.CLEAN_CUSTOMERS, HOUR).relpath
        before = {k: get(s3_lake, k) for k in committed_keys(s3_lake, rel) if "_attempts" in k}
        s3_lake.raw.delete(committed_keys(s3_lake, rel))

        report = replication.verify_hour([gcs, azure], s3_lake, HOUR)
        assert {(p.cloud, p.problem) for p in report.problems} == {("lake", "missing")}
        assert {p.object for p in report.repaired} == {f"{rel}/part-00000.parquet", f"{rel}/{lake.SUMMARY_FILE}"}
        after = {k: get(s3_lake, k) for k in committed_keys(s3_lake, rel) if "_attempts" in k}
        assert sorted(map(sha, after.values())) == sorted(map(sha, before.values()))
        assert replication.verify_hour([gcs, azure], s3_lake, HOUR).problems == []


class TestRerun:
    def test_a_rerun_leaves_exactly_the_committed_objects(self, job_output, s3_lake):
        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)
        first = keys(s3_lake)
        # A writer that died before its pointer: its attempt objects are invisible, then removed.
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        orphan = f"prod/{rel}/_attempts/{'0' * 20}-deadbeef.part-00000.parquet"
        s3_lake.raw.put(orphan, b"half an attempt")
        before = read_tables(s3_lake, rel)

        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)

        partitions = [lake.partition("/", ds, HOUR).relpath for ds in lake.HOURLY_OUTPUTS]
        expected = set().union(*(committed_keys(s3_lake, p) for p in partitions))
        assert keys(s3_lake) == expected
        assert orphan not in keys(s3_lake)
        assert not (first - {f"prod/{p}/_commit.json" for p in partitions}) & keys(s3_lake)  # every old attempt gone
        assert read_tables(s3_lake, rel).equals(before)


class RaceFS:
    """A pyarrow S3 file system that runs ``race`` just before the n-th read of an attempt object: the
    moment a re-run commits and deletes the old attempt under a reader (third-party I/O wrapped, none of
    our code changed)."""

    def __init__(self, fs, nth: int, race) -> None:
        self._fs, self._nth, self._race, self.reads = fs, nth, race, 0

    def open_input_stream(self, path):
        if "/_attempts/" in path:
            self.reads += 1
            if self.reads == self._nth:
                self._race()
        return self._fs.open_input_stream(path)

    def __getattr__(self, name):
        return getattr(self._fs, name)


class TestReaderDuringRerun:
    @staticmethod
    def version(the_lake, rel: str, tag: int, files: int = 3, rows_each: int = 50) -> None:
        staging = the_lake.staging_dir(lake.partition(the_lake.root, lake.ENRICHED_CUSTOMERS, HOUR))
        staging.mkdir()
        for i in range(files):
            pq.write_table(
                pa.table({"v": [tag] * rows_each, "i": list(range(rows_each))}), staging / f"part-{i:05d}.parquet"
            )
        the_lake.publish(rel, staging)

    @pytest.mark.parametrize("nth", [1, 2, 3])
    def test_the_reader_sees_the_old_hour_or_the_new_one_never_a_mix(self, s3_lake, nth):
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        self.version(s3_lake, rel, tag=1)
        race = RaceFS(s3_lake.fs, nth, lambda: self.version(s3_lake, rel, tag=2))
        reader = ObjectLake(s3_lake.root, race)

        table = read_tables(reader, rel)

        assert race.reads >= nth  # the re-run really happened in the middle of the read
        assert table.num_rows == 3 * 50
        assert set(table.column("v").to_pylist()) == {2}
        assert read_tables(s3_lake, rel).equals(table)

    def test_a_writer_that_dies_before_its_pointer_leaves_the_old_hour_visible(self, s3_lake):
        rel = lake.partition("/", lake.ENRICHED_CUSTOMERS, HOUR).relpath
        self.version(s3_lake, rel, tag=1)

        class PointerRefused(Exception):
            pass

        class NoPointerFS(RaceFS):
            def open_output_stream(self, path, *a, **kw):
                if path.endswith("/_commit.json"):
                    raise PointerRefused(path)
                return self._fs.open_output_stream(path, *a, **kw)

        dying = ObjectLake(s3_lake.root, NoPointerFS(s3_lake.fs, 0, None), s3_lake._delete_objects)
        with pytest.raises(PointerRefused):
            self.version(dying, rel, tag=2)

        table = read_tables(s3_lake, rel)
        assert (table.num_rows, set(table.column("v").to_pylist())) == (150, {1})
        assert keys(s3_lake) == committed_keys(s3_lake, rel)  # its own attempt objects were removed


class TestOperators:
    def test_replicate_verify_and_restore_operators_on_an_object_lake(self, job_output, s3_lake, stores, monkeypatch):
        from tricloud.operators.replication import ReplicateHourOperator, RestoreLakeOperator, VerifyReplicasOperator

        monkeypatch.setenv("REPLICA_BUCKET", stores[0].bucket)
        commit_job_output(job_output, s3_lake)
        enrich_hour(s3_lake, HOUR)
        hour, root = HOUR.isoformat(), s3_lake.root
        files = len(replication.build_manifest(s3_lake, HOUR)["files"])

        sent = {
            c: ReplicateHourOperator(task_id=f"replicate_to_{c}", cloud=c, hour=hour, lake_root=root).execute({})
            for c in ("s3", "gcs", "azure")
        }
        others = [s.name for s in replicas(stores, s3_lake)]
        assert sent[s3_lake.cloud] is None  # the lake's own cloud holds the primary: no replica of its own
        primary_replica = next(s for s in stores if s.name == s3_lake.cloud)
        assert primary_replica.list_keys("") == []  # ... and nothing was written to its replica bucket
        for c in others:
            assert json.loads(json.dumps(sent[c]))["objects"] == sent[c]["uploaded"] == files

        verify = VerifyReplicasOperator(task_id="verify_replicas", hour=hour, lake_root=root)
        report = verify.execute({"task": verify, "outlet_events": {}})
        assert (report["clouds"], report["problems"], report["objects_checked"]) == (
            ["lake", *others],
            [],
            3 * files,
        )

        s3_lake.raw.delete(keys(s3_lake))
        out = RestoreLakeOperator(
            task_id="restore", source=others[0], target="local", start=hour, end=hour, lake_root=root
        ).execute({})
        assert json.loads(json.dumps(out))["details"][0]["objects"] == files
        assert out["hours"] == 1
        assert verify.execute({"task": verify, "outlet_events": {}})["problems"] == []


class TestAJobWithStagedIO:
    def test_the_ingest_job_reads_and_commits_the_hour_on_the_object_lake(self, job_output, s3_lake):
        """The real ingest job (``main`` on ``local[1]``) with ``--lake-root s3://…`` / ``gs://…`` and staged
        object-store I/O, as a Spark cluster without a connector runs it: the raw object is downloaded, Spark
        writes locally, the driver uploads the attempt and commits it. The driver reaches the store with the
        standard client settings only (AWS_* / STORAGE_EMULATOR_HOST). Its rows must equal the same job's
        rows on a local lake from the same input."""
        from include.jobs import staged_io

        raw_rel = lake.partition("/", lake.RAW_CUSTOMERS, HOUR).relpath
        local_raw = lake.partition(job_output, lake.RAW_CUSTOMERS, HOUR).path / lake.RAW_CUSTOMERS_FILE
        s3_lake.raw.put(f"prod/{raw_rel}/{lake.RAW_CUSTOMERS_FILE}", local_raw.read_bytes())
        env = {staged_io.OBJECT_STORE_IO_ENV: staged_io.STAGED}
        if s3_lake.cloud == "s3":  # the driver's standard settings, from the world's aws connection
            extra = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]
            env.update(
                AWS_ENDPOINT_URL=extra["endpoint_url"],
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",  # pragma: allowlist secret (moto's published test key)
                AWS_DEFAULT_REGION=extra["region_name"],
            )

        run_job("ingest_customers", s3_lake.root, **env)

        clean_rel = lake.partition("/", lake.CLEAN_CUSTOMERS, HOUR).relpath
        p = pointer(s3_lake, clean_rel)
        objects = {f["name"]: f.get("object") or f"{p['attempt']}.{f['name']}" for f in p["files"]}
        data = {n: get(s3_lake, f"prod/{clean_rel}/_attempts/{o}") for n, o in objects.items()}
        assert all(sha(data[f["name"]]) == f["sha256"] for f in p["files"])
        parquet = [pq.read_table(pa.BufferReader(b)) for n, b in sorted(data.items()) if n.endswith(".parquet")]
        on_store = pa.concat_tables(parquet).sort_by("order_id")
        local_dir = lake.partition(job_output, lake.CLEAN_CUSTOMERS, HOUR).path
        on_disk = pa.concat_tables([pq.read_table(f) for f in sorted(local_dir.glob("*.parquet"))]).sort_by("order_id")
        assert on_store.num_rows == on_disk.num_rows > 0
        assert on_store.equals(on_disk.select(on_store.column_names))
        summary = json.loads(data[lake.SUMMARY_FILE])
        assert summary["input"] == f"{s3_lake.root}/{raw_rel}/{lake.RAW_CUSTOMERS_FILE}"  # the object, not a copy
