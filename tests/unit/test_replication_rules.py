"""The fast tier of replication: its core rules on in-memory clouds and a local-directory lake, no server.

Replicate (by content: an unchanged re-run sends nothing; a changed file is re-sent, a removed one
deleted; the manifest is the last object written; a cut upload leaves no manifest), verify (a checksum
mismatch or a missing object is repaired from a healthy copy; the lake's lost file from a cloud; with no
healthy copy it is reported unrepaired) and restore (from any one surviving copy, verified before it is
published). The same rules against the real S3, GCS and Azure emulators: tests/integration/
test_replication.py (the integration tier). Run this tier alone: ``pytest -m fast tests/unit`` (seconds).
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake, replication
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.fast
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
KEY = replication.manifest_key(HOUR)


def make_hour(root) -> None:
    """One small parquet file per output dataset, plus the enriched summary."""
    for i, ds in enumerate(lake.HOURLY_OUTPUTS):
        part = lake.partition(root, ds, HOUR).path
        part.mkdir(parents=True)
        pq.write_table(pa.table({"id": list(range(10 + i)), "ds": [ds[1]] * (10 + i)}), part / "part-00000.parquet")
    (lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE).write_text('{"rows": 1}\n')


def lake_files(root) -> dict[str, str]:
    """Every file of the hour's partitions (what replication must copy), by path: its SHA-256."""
    out = {}
    for ds in lake.HOURLY_OUTPUTS:
        for p in sorted(lake.partition(root, ds, HOUR).path.glob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cloud_files(store: MemoryStore) -> dict[str, str]:
    return {k: store.digest(k) for k in store.objects if not k.startswith("_manifests/")}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "lake"
    make_hour(root)
    return root


@pytest.fixture
def clouds():
    return [MemoryStore("s3"), MemoryStore("gcs"), MemoryStore("azure")]


class TestReplicate:
    def test_every_cloud_holds_the_lakes_bytes_and_the_manifest_comes_last(self, root, clouds):
        expected = lake_files(root)
        for cloud in clouds:
            res = replication.replicate_hour(cloud, root, HOUR)
            assert (res.uploaded, res.skipped) == (len(expected), 0)
            assert cloud_files(cloud) == expected  # digests of the bytes held, computed here
            assert cloud.writes[-1] == KEY and KEY not in cloud.writes[:-1]
            manifest = replication.read_manifest(cloud, HOUR)
            assert {f["path"]: f["sha256"] for f in manifest["files"]} == expected

    def test_an_unchanged_rerun_sends_nothing(self, root, clouds):
        s3 = clouds[0]
        replication.replicate_hour(s3, root, HOUR)
        s3.writes.clear()
        res = replication.replicate_hour(s3, root, HOUR)
        assert (res.uploaded, res.skipped, res.bytes_uploaded) == (0, len(lake_files(root)), 0)
        assert s3.writes == []

    def test_a_same_name_with_other_bytes_is_resent_and_a_removed_file_deleted(self, root, clouds):
        s3 = clouds[0]
        replication.replicate_hour(s3, root, HOUR)
        changed = lake.partition(root, lake.CLEAN_CUSTOMERS, HOUR).path / "part-00000.parquet"
        pq.write_table(pa.table({"id": [1, 2, 3], "ds": ["x"] * 3}), changed)
        removed = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE
        removed.unlink()
        s3.writes.clear()
        res = replication.replicate_hour(s3, root, HOUR)
        assert s3.uploads == [str(changed.relative_to(root))]  # only the changed file, by content
        assert res.stale_deleted == 1
        assert cloud_files(s3) == lake_files(root)
        assert s3.writes[-1] == KEY

    def test_a_cut_upload_leaves_no_manifest_and_the_rerun_completes(self, root, clouds):
        s3 = clouds[0]
        s3.fail_after = 2
        with pytest.raises(ConnectionResetError):
            replication.replicate_hour(s3, root, HOUR, workers=1)
        assert s3.stat(KEY) is None  # an hour without a manifest is not complete
        s3.fail_after = None
        replication.replicate_hour(s3, root, HOUR)
        assert cloud_files(s3) == lake_files(root) and s3.stat(KEY) is not None


class TestVerifyAndRepair:
    def test_a_rotten_and_a_missing_object_are_repaired_from_a_healthy_copy(self, root, clouds):
        for cloud in clouds:
            replication.replicate_hour(cloud, root, HOUR)
        expected = lake_files(root)
        rotten, gone = sorted(expected)[:2]
        s3, gcs, _ = clouds
        s3.rot(rotten, b"not the bytes the manifest lists")
        gcs.delete([gone])
        report = replication.verify_hour(clouds, root, HOUR)
        assert {(p.cloud, p.object, p.problem) for p in report.problems} == {
            ("s3", rotten, "checksum mismatch"),
            ("gcs", gone, "missing"),
        }
        assert report.unrepaired == [] and {p.object for p in report.repaired} == {rotten, gone}
        assert all(p.source for p in report.repaired)
        for cloud in clouds:
            assert cloud_files(cloud) == expected, cloud.name
        assert replication.verify_hour(clouds, root, HOUR).problems == []

    def test_the_lake_lost_a_file_and_gets_it_back_from_a_cloud(self, root, clouds):
        for cloud in clouds:
            replication.replicate_hour(cloud, root, HOUR)
        expected = lake_files(root)
        lost = sorted(expected)[-1]
        (root / lost).unlink()
        report = replication.verify_hour(clouds, root, HOUR)
        assert [(p.cloud, p.object, p.problem) for p in report.repaired] == [("local", lost, "missing")]
        assert report.repaired[0].source in {c.name for c in clouds}
        assert lake_files(root) == expected

    def test_with_no_healthy_copy_the_problem_is_reported_unrepaired(self, root, clouds):
        s3 = clouds[0]
        replication.replicate_hour(s3, root, HOUR)
        victim = sorted(lake_files(root))[0]
        s3.rot(victim, b"rot")
        (root / victim).write_bytes(b"rot too")  # the lake's copy is bad as well: nothing to copy from
        report = replication.verify_hour([s3], root, HOUR)
        assert {(p.cloud, p.object) for p in report.unrepaired} >= {("s3", victim), ("local", victim)}
        assert s3.objects[victim][0] == b"rot"  # nothing was overwritten with a bad copy

    def test_without_repair_nothing_is_written(self, root, clouds):
        s3 = clouds[0]
        replication.replicate_hour(s3, root, HOUR)
        victim = sorted(lake_files(root))[0]
        s3.delete([victim])
        s3.writes.clear()
        report = replication.verify_hour([s3], root, HOUR, repair=False)
        assert [(p.cloud, p.object, p.problem) for p in report.unrepaired] == [("s3", victim, "missing")]
        assert s3.writes == []


class TestRestore:
    @pytest.mark.parametrize("survivor", [0, 1, 2], ids=["s3", "gcs", "azure"])
    def test_the_lake_and_two_clouds_lost_restore_from_the_one_left(self, root, clouds, tmp_path, survivor):
        for cloud in clouds:
            replication.replicate_hour(cloud, root, HOUR)
        expected = lake_files(root)
        shutil.rmtree(root)
        for i, cloud in enumerate(clouds):
            if i != survivor:
                cloud.objects.clear()
        res = replication.restore_hour(clouds[survivor], HOUR, lake_root=root)
        assert res.objects == len(expected)
        assert lake_files(root) == expected
        # The lake is whole again, manifest included: verify finds the wiped clouds and refills them.
        report = replication.verify_hour(clouds, root, HOUR)
        assert report.reference == "lake manifest" and report.unrepaired == []
        for cloud in clouds:
            assert cloud_files(cloud) == expected, cloud.name

    def test_restore_into_another_cloud_writes_its_manifest_last(self, root, clouds):
        s3, gcs, _ = clouds
        replication.replicate_hour(s3, root, HOUR)
        replication.restore_hour(s3, HOUR, target=gcs)
        assert cloud_files(gcs) == lake_files(root)
        assert gcs.writes[-1] == KEY and KEY not in gcs.writes[:-1]

    def test_a_rotten_source_publishes_nothing(self, root, clouds, tmp_path):
        s3 = clouds[0]
        replication.replicate_hour(s3, root, HOUR)
        s3.rot(sorted(lake_files(root))[0], b"rot")
        target = tmp_path / "restored"
        with pytest.raises(replication.ReplicationError, match="does not match its manifest"):
            replication.restore_hour(s3, HOUR, lake_root=target)
        assert lake_files(target) == {}
        assert not (target / KEY).exists()
