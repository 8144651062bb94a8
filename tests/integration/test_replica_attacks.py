"""Attacks on a replica (issue 19): a compromised cloud, a busy disk, a stale writer, names a cloud
rewrites, empty objects. Every test runs against the three real emulators (moto, gcp-storage-emulator,
Azurite) through the provider hooks; each sample failed on the code before the fix."""

from __future__ import annotations

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake, replication
from tests.integration.conftest import CLOUDS
from tests.integration.test_replication import HOUR, by_name, lake_files, make_hour
from tricloud.replication.stores import make_store

KEY = replication.manifest_key(HOUR)
ESCAPE = lake.partition("", lake.CLEAN_CUSTOMERS, HOUR).relpath.lstrip("/") + "/../../../../../../escape.txt"


@pytest.fixture
def small_lake(tmp_path):
    root = tmp_path / "a" / "b" / "lake"  # deep enough that '..' escapes stay inside tmp_path
    make_hour(root)
    return root


def replicated(stores, root):
    for s in stores:
        replication.replicate_hour(s, root, HOUR)
    return replication.build_manifest(root, HOUR)


def hour_keys(store) -> set[str]:
    return {k for p in replication.hour_prefixes(HOUR) for k in store.list_keys(p)}


def put_raw(store, key: str, body: bytes) -> None:
    """Write an object behind replication's back, as an attacker with the cloud's credentials would."""
    store.upload_bytes(body, key, hashlib.sha256(body).hexdigest(), hashlib.md5(body).digest())


def escapes(tmp_path) -> list:
    return sorted(tmp_path.rglob("escape.txt"))


class TestManifestIsUntrusted:
    def plant_escape(self, s3, manifest: dict) -> None:
        payload = b"owned\n"
        put_raw(s3, ESCAPE, payload)
        evil = dict(manifest)
        evil.pop("version", None)
        evil["files"] = [
            *manifest["files"],
            {"path": ESCAPE, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()},
        ]
        evil["bytes"] = sum(f["size"] for f in evil["files"])
        put_raw(s3, KEY, replication.manifest_bytes(evil))

    def test_restore_refuses_an_entry_that_leaves_the_lake_and_writes_nothing(self, stores, small_lake, tmp_path):
        s3 = by_name(stores)["s3"]
        self.plant_escape(s3, replicated(stores, small_lake))
        target = small_lake.parent / "restored"
        target.mkdir()
        with pytest.raises(replication.ManifestError, match=r"s3: .*escape\.txt.*'\.\.'") as err:
            replication.restore_hour(s3, HOUR, lake_root=target, others=stores[1:])
        assert "restore from gcs or azure instead" in str(err.value)
        assert escapes(tmp_path) == []
        assert list(target.iterdir()) == []  # nothing written anywhere

    def test_verify_without_a_lake_manifest_ignores_the_bad_manifest_and_repairs_it(self, stores, small_lake, tmp_path):
        s3, gcs = by_name(stores)["s3"], by_name(stores)["gcs"]
        good = replicated(stores, small_lake)
        self.plant_escape(s3, good)
        gcs.delete([KEY])  # one bad vote against one good one: the bad one must not win
        (small_lake / KEY).unlink()
        report = replication.verify_hour(stores, small_lake, HOUR)
        found = {(p.cloud, p.object, p.problem) for p in report.problems}
        assert ("s3", KEY, "manifest corrupt") in found
        assert ("s3", ESCAPE, "not in manifest") in found
        assert report.reference == "manifest of azure"
        assert escapes(tmp_path) == []
        assert replication.read_manifest(s3, HOUR) == good  # repaired from the manifest the others hold
        assert ESCAPE not in s3.list_keys("")
        assert replication.verify_hour(stores, small_lake, HOUR).problems == []

    def test_a_truncated_manifest_is_that_clouds_damage(self, stores, small_lake, tmp_path):
        s3 = by_name(stores)["s3"]
        good = replicated(stores, small_lake)
        body = replication.manifest_bytes(good)
        put_raw(s3, KEY, body[: len(body) // 2])
        (small_lake / KEY).unlink()
        with pytest.raises(
            replication.ManifestError, match=r"s3: manifest .* corrupt: not valid JSON.*restore from gcs or azure"
        ):
            replication.restore_hour(s3, HOUR, lake_root=tmp_path / "restored", others=stores[1:])
        report = replication.verify_hour(stores, small_lake, HOUR)
        assert {(p.cloud, p.problem) for p in report.problems} == {
            ("s3", "manifest corrupt"),
            ("local", "manifest missing"),
        }
        assert {(r.cloud, r.problem) for r in report.repaired} == {
            ("s3", "manifest corrupt"),
            ("local", "manifest missing"),
        }
        assert replication.read_manifest(s3, HOUR) == good
        replication.restore_hour(s3, HOUR, lake_root=tmp_path / "restored")
        assert lake_files(tmp_path / "restored") == lake_files(small_lake)


def rewrite_keeping_mtime(path, data: bytes) -> None:
    """What cp -p, rsync -t or tar -x leave: new bytes of the same size under the old mtime."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class TestChecksumOfTheBytesSent:
    def data_json(self, root):
        path = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / "data.json"
        path.write_bytes(b'{"qty": 1}\n')
        return path

    def test_same_size_rewrite_with_the_old_mtime_reaches_every_cloud(self, stores, small_lake):
        path = self.data_json(small_lake)
        replicated(stores, small_lake)
        rewrite_keeping_mtime(path, b'{"qty": 9}\n')
        new_sha = hashlib.sha256(b'{"qty": 9}\n').hexdigest()
        for s in stores:
            assert replication.replicate_hour(s, small_lake, HOUR).uploaded == 1, s.name
            assert replication.remote_sha256(s, str(path.relative_to(small_lake))) == new_sha, s.name
        assert replication.verify_hour(stores, small_lake, HOUR).problems == []
        assert path.read_bytes() == b'{"qty": 9}\n'

    def test_verify_never_overwrites_a_lake_file_changed_after_replication(self, stores, small_lake):
        path = self.data_json(small_lake)
        replicated(stores, small_lake)
        rewrite_keeping_mtime(path, b'{"qty": 9}\n')
        report = replication.verify_hour(stores, small_lake, HOUR)
        rel = str(path.relative_to(small_lake))
        assert {(p.cloud, p.object, p.problem) for p in report.problems} == {("local", rel, "changed since replicated")}
        assert [(u.cloud, u.object) for u in report.unrepaired] == [("local", rel)]
        assert path.read_bytes() == b'{"qty": 9}\n'  # the newer data is kept, not "repaired" away

    @pytest.mark.parametrize("cloud", CLOUDS)
    def test_a_file_rewritten_between_hashing_and_upload_fails_and_leaves_no_bad_object(
        self, stores, small_lake, cloud
    ):
        store = by_name(stores)[cloud]
        victim = [f for f in replication.build_manifest(small_lake, HOUR)["files"] if f["path"].endswith(".parquet")][2]
        real_stat = store.stat

        def stat_then_rewrite(key):  # the disk is busy: another writer gets in just before the upload
            if key == victim["path"] and not getattr(store, "_rewritten", False):
                store._rewritten = True
                data = bytearray((small_lake / key).read_bytes())
                data[-20] ^= 0xFF
                (small_lake / key).write_bytes(bytes(data))
            return real_stat(key)

        store.stat = stat_then_rewrite
        with pytest.raises(replication.ReplicationError, match="changed while replicating"):
            replication.replicate_hour(store, small_lake, HOUR, workers=1)
        del store.stat
        assert replication.read_manifest(store, HOUR) is None
        assert replication.remote_sha256(store, victim["path"]) in (None, victim["sha256"])
        for key in hour_keys(store):  # whatever landed matches the lake's bytes
            assert store.stat(key).sha256 == replication.remote_sha256(store, key), key


class TestNoStaleWriter:
    @pytest.mark.parametrize("cloud", CLOUDS)
    def test_an_older_run_resuming_never_replaces_the_newer_manifest(self, stores, small_lake, tmp_path, cloud):
        older = make_store(cloud, stores[0].bucket)  # the older run's own client
        files = replication.build_manifest(small_lake, HOUR)["files"]
        real_upload, sent = older.upload_stream, []

        def upload_then_pause(*args, **kwargs):
            real_upload(*args, **kwargs)
            sent.append(args[1])
            if len(sent) == len(files):  # paused just before its manifest write: the hour is republished ...
                part = small_lake / files[0]["path"]
                pq.write_table(pa.table({"id": [7, 8, 9]}), part.with_name(".new"))
                os.replace(part.with_name(".new"), part)
                # ... and a newer run replicates it to completion
                replication.replicate_hour(make_store(cloud, stores[0].bucket), small_lake, HOUR)

        older.upload_stream = upload_then_pause
        with pytest.raises(replication.StaleRunError, match="newer version"):
            replication.replicate_hour(older, small_lake, HOUR, workers=1)
        current = replication.build_manifest(small_lake, HOUR)
        assert replication.read_manifest(older, HOUR) == current
        assert hour_keys(older) == {f["path"] for f in current["files"]}
        replication.restore_hour(older, HOUR, lake_root=tmp_path / "restored")
        assert lake_files(tmp_path / "restored") == lake_files(small_lake)

    def stray(self):
        return lake.partition("", lake.CLEAN_CUSTOMERS, HOUR).relpath.lstrip("/") + "/part-00001.parquet"

    def test_restore_into_a_cloud_leaves_exactly_the_manifests_objects(self, stores, small_lake):
        s3, gcs = by_name(stores)["s3"], by_name(stores)["gcs"]
        manifest = replicated([gcs], small_lake)
        put_raw(s3, self.stray(), b"PAR1 stray")
        replication.restore_hour(gcs, HOUR, target=s3)
        assert hour_keys(s3) == {f["path"] for f in manifest["files"]}

    def test_verify_reports_an_object_its_manifest_does_not_list(self, stores, small_lake):
        s3 = by_name(stores)["s3"]
        replicated(stores, small_lake)
        put_raw(s3, self.stray(), b"PAR1 stray")
        report = replication.verify_hour(stores, small_lake, HOUR)
        assert [(p.cloud, p.object, p.problem) for p in report.problems] == [("s3", self.stray(), "not in manifest")]
        assert self.stray() not in s3.list_keys("")
        assert replication.verify_hour(stores, small_lake, HOUR).problems == []


class TestNamesACloudRewrites:
    @pytest.mark.parametrize("name", ["a\\b.json", "trailing.", "bell\x07.json"], ids=["backslash", "dot", "control"])
    def test_refused_before_anything_is_sent(self, stores, small_lake, name):
        (lake.partition(small_lake, lake.ENRICHED_CUSTOMERS, HOUR).path / name).write_text("{}\n")
        for s in stores:
            with pytest.raises(replication.ReplicationError, match=r"rename the file") as err:
                replication.replicate_hour(s, small_lake, HOUR)
            assert repr(name)[1:-1] in str(err.value), s.name
            assert hour_keys(s) == set() and replication.read_manifest(s, HOUR) is None, s.name


class TestEmptyObjects:
    def test_zero_byte_files_verify_and_restore_as_empty(self, stores, small_lake, tmp_path):
        empty = lake.partition(small_lake, lake.REJECTS_ENRICHMENT, HOUR).path / "empty.json"
        empty.write_bytes(b"")
        replicated(stores, small_lake)
        assert replication.verify_hour(stores, small_lake, HOUR).problems == []
        for s in stores:
            target = tmp_path / f"restored-{s.name}"
            replication.restore_hour(s, HOUR, lake_root=target)
            assert (target / empty.relative_to(small_lake)).read_bytes() == b"", s.name
            assert lake_files(target) == lake_files(small_lake), s.name


class TestRestoreIntoALostLake:
    def test_a_lake_root_that_does_not_exist_is_created(self, stores, small_lake, tmp_path):
        azure = by_name(stores)["azure"]
        replicated([azure], small_lake)
        target = tmp_path / "new-disk" / "lake"
        res = replication.restore_hour(azure, HOUR, lake_root=target)
        assert res.objects == len(replication.build_manifest(small_lake, HOUR)["files"])
        assert lake_files(target) == lake_files(small_lake)
        assert json.loads((target / KEY).read_text()) == replication.read_manifest(azure, HOUR)
