"""An hour with ``LAKE_ROOT=s3://…`` on the S3 emulator (moto) and with ``LAKE_ROOT=gs://…`` on the GCS
emulator (gcp-storage-emulator), for real: enrichment, warehouse load, replication to the two other clouds,
verify, restore after the primary's objects are deleted, the replication operators, and an ingest job with
staged object-store I/O. Every test runs once per store (``[s3]``, ``[gs]``). Re-runs, and a reader racing a
re-run, on the same lakes: tests/integration/test_object_lake_reruns.py.

The clean partitions come from the real ingest jobs (spark-submit's ``main`` on ``local[1]``), which write a
local directory: Spark cannot reach s3:// on this machine (no hadoop-aws jars). Their output is committed to
the S3 lake through the lake's commit protocol, the step a job running on a cluster with the S3 connector
would take (docs/design.md "The lake on object storage"). Everything else runs as in production. Counts
and SHA-256 digests are computed independently (tests/support/object_lake.py); the fixtures ``job_output``
and ``s3_lake`` are in tests/integration/conftest.py.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq

from include import lake, replication
from include.enrichment import enrich_hour
from include.warehouse import upsert_hour
from tests.support.object_lake import (
    HOUR,
    INGESTED,
    commit_job_output,
    committed_keys,
    get,
    keys,
    lake_bytes,
    pointer,
    replicas,
    rows,
    run_job,
    sha,
    store_bytes,
)


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
