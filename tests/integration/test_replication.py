"""Replication, verification and restore against the real S3, GCS and Azure Blob emulators."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake, replication

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def make_hour(root, big_rows: int = 0) -> None:
    """A small hour: one parquet file per output dataset (one of them large enough for chunked uploads)."""
    rng = np.random.default_rng(7)
    for i, ds in enumerate(lake.HOURLY_OUTPUTS):
        part = lake.partition(root, ds, HOUR).path
        part.mkdir(parents=True)
        rows = big_rows if i == 0 and big_rows else 50 + i
        table = pa.table({"id": np.arange(rows), "payload": rng.random(rows), "tag": rng.integers(0, 1 << 62, rows)})
        pq.write_table(table, part / "part-00000.parquet", compression="none")
    (lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE).write_text('{"rows": 1}\n')


def lake_files(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_staging" not in p.parts and not any(part.startswith(".") for part in p.parts)
    }


@pytest.fixture
def hour_lake(tmp_path):
    root = tmp_path / "lake"
    make_hour(root, big_rows=1_400_000)  # ~35 MB: S3 multipart, GCS resumable chunks, Azure blocks
    return root


def by_name(stores):
    return {s.name: s for s in stores}


class TestReplicate:
    def test_all_three_clouds_equal_the_lake(self, stores, hour_lake):
        local = replication.build_manifest(hour_lake, HOUR)
        assert local["files"][0]["size"] > 2 * 16 * 2**20 * 0.9  # several 16 MiB chunks
        for s in stores:
            res = replication.replicate_hour(s, hour_lake, HOUR)
            assert res.uploaded == len(local["files"])
            assert replication.read_manifest(s, HOUR) == local
            for entry in local["files"]:
                assert replication.remote_sha256(s, entry["path"]) == entry["sha256"], (s.name, entry["path"])
                assert s.stat(entry["path"]).sha256 == entry["sha256"]

    def test_unchanged_rerun_sends_zero_bytes(self, stores, hour_lake):
        for s in stores:
            replication.replicate_hour(s, hour_lake, HOUR)
            again = replication.replicate_hour(s, hour_lake, HOUR)
            assert (again.uploaded, again.bytes_uploaded) == (0, 0), s.name

    def test_changed_file_is_resent_and_removed_file_deleted(self, stores, hour_lake):
        s = stores[0]
        replication.replicate_hour(s, hour_lake, HOUR)
        rej = lake.partition(hour_lake, lake.REJECTS_ENRICHMENT, HOUR).path / "part-00000.parquet"
        pq.write_table(pa.table({"id": [1, 2, 3]}), rej)
        summary = lake.partition(hour_lake, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE
        summary.unlink()
        res = replication.replicate_hour(s, hour_lake, HOUR)
        assert res.uploaded == 1
        assert res.stale_deleted == 1
        keys = {k for p in replication.hour_prefixes(HOUR) for k in s.list_keys(p)}
        assert keys == {f["path"] for f in replication.build_manifest(hour_lake, HOUR)["files"]}

    def test_cut_mid_upload_leaves_no_manifest_then_rerun_completes(self, stores, hour_lake):
        s = stores[0]
        real_upload, calls = s.upload_stream, []

        def flaky(*args, **kwargs):
            calls.append(args[1])
            if len(calls) == 3:
                raise ConnectionError("network cut")
            return real_upload(*args, **kwargs)

        s.upload_stream = flaky
        with pytest.raises(ConnectionError):
            replication.replicate_hour(s, hour_lake, HOUR, workers=1)
        assert replication.read_manifest(s, HOUR) is None  # a partial hour never looks complete
        landed = len([k for p in replication.hour_prefixes(HOUR) for k in s.list_keys(p)])
        assert 2 <= landed < len(replication.build_manifest(hour_lake, HOUR)["files"])
        del s.upload_stream
        res = replication.replicate_hour(s, hour_lake, HOUR)
        assert res.skipped == landed  # what landed before the cut is not sent twice
        assert replication.verify_hour([s], hour_lake, HOUR).problems == []

    def test_emulator_down_fails_then_succeeds_after_restart(self, stores, hour_lake, emulators):
        gcs = by_name(stores)["gcs"]
        gcs.retry_timeout = 3.0
        proc = emulators["gcs"]
        proc.stop()
        try:
            with pytest.raises(Exception):
                replication.replicate_hour(gcs, hour_lake, HOUR)
        finally:
            proc.start()
        gcs.ensure_bucket()  # the in-memory emulator forgot everything
        res = replication.replicate_hour(gcs, hour_lake, HOUR)
        assert res.uploaded == res.objects
        assert replication.verify_hour([gcs], hour_lake, HOUR).problems == []


class TestVerifyAndRepair:
    def test_corrupted_and_deleted_replicas_are_found_and_repaired(self, stores, hour_lake):
        for s in stores:
            replication.replicate_hour(s, hour_lake, HOUR)
        s3, gcs = by_name(stores)["s3"], by_name(stores)["gcs"]
        victim = replication.build_manifest(hour_lake, HOUR)["files"][1]
        # An attacker rewrites the bytes but keeps the checksum metadata: only a read-back notices.
        s3.client.put_object(
            Bucket=s3.bucket, Key=victim["path"], Body=b"ransom", Metadata={"sha256": victim["sha256"]}
        )
        gcs.delete([victim["path"]])

        report = replication.verify_hour(stores, hour_lake, HOUR)
        found = {(p.cloud, p.object, p.problem) for p in report.problems}
        assert found == {("s3", victim["path"], "checksum mismatch"), ("gcs", victim["path"], "missing")}
        assert {(r.cloud, r.source) for r in report.repaired} == {("s3", "local lake"), ("gcs", "local lake")}
        assert report.reference == "lake manifest"
        assert replication.verify_hour(stores, hour_lake, HOUR).problems == []

    def test_the_task_fails_at_try_1_on_a_repaired_replica_and_passes_the_next_run(self, stores, tmp_path):
        """verify_replicas (the operator, as the DAG declares it) raises ReplicaCheckFailedError, which the
        retry policy fails at once: a repair shows as a failed run, while a read error would be retried."""
        from airflow.sdk.definitions.retry_policy import RetryAction

        from include.errors import ReplicaCheckFailedError
        from tricloud.operators.replication import VerifyReplicasOperator
        from tricloud.retries import RETRY_POLICY

        class TI:
            def __init__(self) -> None:
                self.pushed: dict = {}

            def xcom_push(self, key, value):
                self.pushed[key] = value

        root = tmp_path / "lake"
        make_hour(root)
        for s in stores:
            replication.replicate_hour(s, root, HOUR)
        victim = replication.build_manifest(root, HOUR)["files"][0]
        by_name(stores)["azure"].delete([victim["path"]])
        op = VerifyReplicasOperator(
            task_id="verify_replicas", hour=HOUR.isoformat(), lake_root=str(root), bucket=stores[0].bucket
        )
        context = {"task": op, "outlet_events": {}, "ti": TI()}
        with pytest.raises(ReplicaCheckFailedError, match=r"azure: .* \(missing\)") as err:
            op.execute(context)
        assert RETRY_POLICY.evaluate(err.value, try_number=1, max_tries=3).action is RetryAction.FAIL
        assert [p["problem"] for p in context["ti"].pushed["report"]["repaired"]] == ["missing"]
        assert op.execute(context)["problems"] == []  # repaired: a cleared run passes

    def test_repair_from_another_cloud_when_the_lake_lost_the_file(self, stores, hour_lake):
        for s in stores:
            replication.replicate_hour(s, hour_lake, HOUR)
        victim = replication.build_manifest(hour_lake, HOUR)["files"][2]
        by_name(stores)["azure"].delete([victim["path"]])
        (
            hour_lake / victim["path"]
        ).unlink()  # lost (a file rewritten since is never overwritten: test_replica_attacks)
        report = replication.verify_hour(stores, hour_lake, HOUR)
        sources = {r.cloud: r.source for r in report.repaired}
        assert sources["local"] in ("s3", "gcs")  # the lake is healed from a cloud ...
        assert sources["azure"] in ("local lake", "s3", "gcs")  # ... and azure from a verified copy
        assert replication.file_digests(hour_lake / victim["path"])[0] == victim["sha256"]  # the lake is healed too

    def test_nothing_to_repair_from_is_reported_unrepaired(self, stores, hour_lake):
        s3 = stores[0]
        replication.replicate_hour(s3, hour_lake, HOUR)
        victim = replication.build_manifest(hour_lake, HOUR)["files"][0]
        s3.delete([victim["path"]])
        os.remove(hour_lake / victim["path"])
        report = replication.verify_hour([s3], hour_lake, HOUR)
        assert report.reference == "lake manifest"
        assert {(u.cloud, u.object) for u in report.unrepaired} >= {
            ("s3", victim["path"]),
            ("local", victim["path"]),
        }
        assert ("s3", replication.manifest_key(HOUR)) not in {(r.cloud, r.object) for r in report.repaired}


class TestRestore:
    def test_two_clouds_and_the_lake_wiped_restore_from_the_third(self, stores, hour_lake, tmp_path):
        for s in stores:
            replication.replicate_hour(s, hour_lake, HOUR)
        original = lake_files(hour_lake)  # data files and the lake's manifest
        s3, gcs, azure = stores
        for s in (s3, gcs):
            s.delete(s.list_keys(""))
            assert s.list_keys("") == []
        for p in list(hour_lake.iterdir()):
            import shutil

            shutil.rmtree(p)

        res = replication.restore_hour(azure, HOUR, lake_root=hour_lake)
        assert res.bytes_restored == sum(os.path.getsize(hour_lake / k) for k in original if "_manifests" not in k)
        assert lake_files(hour_lake) == original  # byte-identical
        for s in (s3, gcs):
            replication.restore_hour(azure, HOUR, target=s)
        assert replication.verify_hour(stores, hour_lake, HOUR).problems == []

    def test_corrupted_source_is_not_restored(self, stores, hour_lake, tmp_path):
        s3 = stores[0]
        replication.replicate_hour(s3, hour_lake, HOUR)
        victim = replication.build_manifest(hour_lake, HOUR)["files"][0]
        s3.client.put_object(Bucket=s3.bucket, Key=victim["path"], Body=b"x", Metadata={"sha256": victim["sha256"]})
        target = tmp_path / "restored"
        target.mkdir()
        with pytest.raises(replication.ReplicationError, match="does not match its manifest"):
            replication.restore_hour(s3, HOUR, lake_root=target)
        assert lake_files(target) == {}  # nothing half-restored

    def test_list_hours(self, stores, hour_lake):
        replication.replicate_hour(stores[0], hour_lake, HOUR)
        assert replication.list_hours(stores[0], HOUR, HOUR + lake.HOUR) == [HOUR]
        assert replication.list_hours(stores[0], HOUR + lake.HOUR, HOUR + 2 * lake.HOUR) == []


class TestNoPublicReplicas:
    """We never grant anonymous read: no public ACL on S3 objects, no public access on the Azure container."""

    def test_uploaded_objects_are_private(self, stores, tmp_path):
        root = tmp_path / "lake"
        make_hour(root)
        s3, _, azure = stores  # the GCS emulator has no ACL model to ask (objects get the bucket default)
        for s in (s3, azure):
            replication.replicate_hour(s, root, HOUR)
        key = replication.build_manifest(root, HOUR)["files"][0]["path"]
        grants = s3.client.get_object_acl(Bucket=s3.bucket, Key=key)["Grants"]
        assert grants and all(g["Grantee"].get("Type") == "CanonicalUser" for g in grants), grants
        bucket_grants = s3.client.get_bucket_acl(Bucket=s3.bucket)["Grants"]
        assert all("AllUsers" not in g["Grantee"].get("URI", "") for g in bucket_grants), bucket_grants
        policy = azure._container.get_container_access_policy()
        assert policy["public_access"] is None, policy
