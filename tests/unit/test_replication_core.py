"""Fast tier for the replication core: manifest validation, names, the digest cache, stream hashing.
Local directories only; the emulator tests are tests/integration/test_replica_attacks.py."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import UTC, datetime

import pytest

from include import lake, replication
from include.replication.digests import hour_digests
from include.replication.manifests import content_sha256

pytestmark = pytest.mark.fast  # the fast tier: no server (`pytest -m fast`)
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
PREFIXES = replication.hour_prefixes(HOUR)
P = PREFIXES[0]
SHA = "a" * 64


def manifest(*entries: dict) -> dict:
    return {"hour": HOUR.isoformat(), "files": list(entries)}


class TestValidateManifest:
    @pytest.mark.parametrize(
        ("entry", "why"),
        [
            ({"path": P + "../../../../../../escape.txt", "size": 1, "sha256": SHA}, "'..'"),
            ({"path": "/etc/passwd", "size": 1, "sha256": SHA}, "absolute path"),
            ({"path": "clean/other/x.parquet", "size": 1, "sha256": SHA}, "outside the expected prefixes"),
            ({"path": P + "sub/x.parquet", "size": 1, "sha256": SHA}, "not directly inside"),
            ({"path": P + "a\\b.json", "size": 1, "sha256": SHA}, "backslash"),
            ({"path": P + "x.parquet", "size": -1, "sha256": SHA}, "size -1"),
            ({"path": P + "x.parquet", "size": "1", "sha256": SHA}, "size '1'"),
            ({"path": P + "x.parquet", "size": True, "sha256": SHA}, "size True"),
            ({"path": P + "x.parquet", "size": 1, "sha256": "A" * 64}, "64 lowercase hex"),
            ({"path": P + "x.parquet", "size": 1, "sha256": SHA[:-1]}, "64 lowercase hex"),
            ({"path": P + "x.parquet", "size": 1, "sha256": SHA, "extra": 1}, "exactly"),
        ],
    )
    def test_a_bad_entry_names_the_cloud_and_the_entry(self, entry, why):
        with pytest.raises(replication.ManifestError, match=r"^s3: manifest k is corrupt: entry 0 ") as err:
            replication.validate_manifest(manifest(entry), cloud="s3", key="k", prefixes=PREFIXES, hour=HOUR)
        assert why in str(err.value)

    def test_a_path_listed_twice_a_wrong_hour_and_a_forged_version_are_refused(self):
        e = {"path": P + "x.parquet", "size": 1, "sha256": SHA}
        for doc, why in [
            (manifest(e, e), "listed twice"),
            ({**manifest(e), "hour": "2026-11-24T11:00:00+00:00"}, "describes hour"),
            (
                {**manifest(e), "version": {"content_sha256": SHA, "published_at": "2026-11-24T10:00:00+00:00"}},
                "version",
            ),
        ]:
            with pytest.raises(replication.ManifestError, match=why):
                replication.validate_manifest(doc, cloud="gcs", key="k", prefixes=PREFIXES, hour=HOUR)

    @pytest.mark.parametrize("published_at", ["2099-01-01T00:00:00+00:00", "2026-11-24T10:00:00", "2026-11-24"])
    def test_a_version_from_the_future_or_without_a_zone_is_refused(self, published_at):
        # An attacker who can write one cloud's manifest can recompute content_sha256; a future
        # published_at would then outrank every honest run (and a naive one cannot be compared).
        e = {"path": P + "x.parquet", "size": 1, "sha256": SHA}
        v = {"content_sha256": content_sha256([e]), "published_at": published_at}
        with pytest.raises(replication.ManifestError, match="^s3: manifest k is corrupt: .*zone-aware"):
            replication.validate_manifest(
                {**manifest(e), "version": v}, cloud="s3", key="k", prefixes=PREFIXES, hour=HOUR
            )

    def test_a_good_manifest_passes_unchanged(self, tmp_path):
        root = tmp_path / "lake"
        part = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path
        part.mkdir(parents=True)
        (part / "empty.json").write_bytes(b"")
        m = replication.build_manifest(root, HOUR)
        assert replication.validate_manifest(m, cloud="local", key="k", prefixes=PREFIXES, hour=HOUR) is m


class TestObjectNames:
    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("a\\b.json", "backslash"),
            ("a.", "ending with '.'"),
            ("d./x", "ending with '.'"),
            ("a\x00b", "control"),
            ("a\nb", "control"),
            ("a\x85b", "control"),
            ("x" * 1025, "1025 bytes"),
            ("é" * 513, "1026 bytes"),
            ("/".join(["d"] * 255), "255 path segments"),
            ("bad\udcff.json", "UTF-8"),
        ],
    )
    def test_names_a_cloud_rewrites_are_refused(self, name, why):
        assert why in lake.object_name_problem(name)

    @pytest.mark.parametrize("name", ["part-00000.parquet", "_summary.json", "a b/ü€ #[]*?.json", "x" * 1024])
    def test_ordinary_names_pass(self, name):
        assert lake.object_name_problem(name) is None


class TestDigestCache:
    def hour(self, tmp_path):
        root = tmp_path / "lake"
        part = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path
        part.mkdir(parents=True)
        path = part / "data.json"
        path.write_bytes(b'{"qty": 1}\n')
        old = path.stat()
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10**10))  # published 10 s ago
        return root, path

    def test_a_same_size_rewrite_with_the_old_mtime_is_hashed_again(self, tmp_path):
        root, path = self.hour(tmp_path)
        rel = str(path.relative_to(root))
        first = hour_digests(root, HOUR)[rel]
        st = path.stat()
        path.write_bytes(b'{"qty": 9}\n')
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (first["size"], first["mtime_ns"])
        assert hour_digests(root, HOUR)[rel]["sha256"] == hashlib.sha256(b'{"qty": 9}\n').hexdigest()

    def test_an_entry_hashed_well_after_the_last_change_is_reused(self, tmp_path):
        root, path = self.hour(tmp_path)
        rel = str(path.relative_to(root))
        time.sleep(0.3)  # let the ctime of the test's own utime fall behind the cache's granularity
        first = hour_digests(root, HOUR)[rel]
        assert hour_digests(root, HOUR)[rel] == first  # not read again

    def test_a_metadata_change_is_hashed_again(self, tmp_path):
        root, path = self.hour(tmp_path)
        rel = str(path.relative_to(root))
        first = hour_digests(root, HOUR)[rel]
        path.chmod(0o644)  # the ctime moves: the file is hashed again, once
        second = hour_digests(root, HOUR)[rel]
        assert second["ctime_ns"] != first["ctime_ns"]
        assert second["hashed_ns"] > first["hashed_ns"]

    def test_a_racily_clean_entry_is_never_trusted(self, tmp_path):
        root, path = self.hour(tmp_path)
        rel = str(path.relative_to(root))
        os.utime(path)  # changed "now": within the timestamp granularity of the hash that follows
        first = hour_digests(root, HOUR)[rel]
        assert hour_digests(root, HOUR)[rel]["hashed_ns"] > first["hashed_ns"]


class TestHashingReader:
    def test_hashes_what_is_read_front_to_back(self):
        data = os.urandom(3000)
        reader = replication.HashingReader(io.BytesIO(data))
        while reader.read(1000):
            pass
        assert (reader.size, reader.hexdigest(), reader.reread) == (3000, hashlib.sha256(data).hexdigest(), False)

    @pytest.mark.parametrize("rest", [None, -1])
    def test_reads_the_rest_of_a_pyarrow_stream(self, rest):
        # An object lake's bytes come from pyarrow input streams, which refuse read(-1); boto3 asks for
        # the rest that way when it uploads a small object.
        import pyarrow as pa

        data = os.urandom(3000)
        reader = replication.HashingReader(pa.BufferReader(data))
        assert reader.read(1000) + reader.read(rest) == data
        assert (reader.size, reader.hexdigest()) == (3000, hashlib.sha256(data).hexdigest())

    def test_a_seek_back_marks_the_hash_as_not_covering_what_was_sent(self):
        reader = replication.HashingReader(io.BytesIO(b"abcdef"))
        reader.read(4)
        reader.seek(2)
        assert reader.read() == b"cdef"
        assert reader.reread and reader.size == 6
        assert reader.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


class _Cloud(replication.LocalStore):
    """A directory standing in for one cloud (the verify logic is the same for every store)."""

    def __init__(self, name: str, root) -> None:
        super().__init__(root)
        self.name = name


class TestOneCloudsWord:
    def test_one_cloud_alone_never_overwrites_bytes_the_lake_holds(self, tmp_path):
        # The lake's manifest is lost and S3 and GCS disagree (1 vote each): an attacker's S3 manifest with
        # a newer (allowed, near-future) version wins the tie. It may fill in what the lake lost, but must not
        # rewrite the lake's own bytes with S3's.
        import json
        from datetime import timedelta

        root = tmp_path / "lake"
        data = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / "data.json"
        data.parent.mkdir(parents=True)
        data.write_bytes(b'{"qty": 1}\n')
        s3, gcs = _Cloud("s3", tmp_path / "s3"), _Cloud("gcs", tmp_path / "gcs")
        for cloud in (s3, gcs):
            replication.replicate_hour(cloud, root, HOUR)
        key = replication.manifest_key(HOUR)
        (root / key).unlink()

        forged_bytes = b'{"qty": 666}\n'
        rel = str(data.relative_to(root))
        s3.path(rel).write_bytes(forged_bytes)
        m = json.loads(s3.path(key).read_bytes())
        for f in m["files"]:
            if f["path"] == rel:
                f["sha256"], f["size"] = hashlib.sha256(forged_bytes).hexdigest(), len(forged_bytes)
        m["bytes"] = sum(f["size"] for f in m["files"])
        at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        m["version"] = {"content_sha256": content_sha256(m["files"]), "published_at": at}
        s3.path(key).write_bytes(replication.manifest_bytes(m))

        result = replication.verify_hour([s3, gcs], root, HOUR)
        assert result.reference == "manifest of s3"
        assert data.read_bytes() == b'{"qty": 1}\n'
        assert replication.Problem("local", rel, "checksum mismatch", None) in result.unrepaired
