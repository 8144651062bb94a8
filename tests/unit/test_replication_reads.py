"""Replication reads (and hashes) each file of a local lake once, for one cloud or three (issue 16), and
a corrupted upload is still caught: refused by a cloud that checks the MD5 it is given, found by
verification where the cloud checks nothing.

Bytes read are counted by the kernel (``rchar`` of ``/proc/self/io``: every byte this process read
through ``read(2)``), through real files in a temporary lake, in-memory clouds, no server.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include import lake, replication
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.fast
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
KEY = replication.manifest_key(HOUR)
FILE_BYTES = 3 << 20


def bytes_read() -> int:
    """Bytes this process has read through read(2) so far (all threads, the kernel's count)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def make_hour(root: Path, seed: int) -> dict[str, str]:
    """Two incompressible files per output dataset; returns their SHA-256 by lake-relative path."""
    rng = random.Random(seed)
    out = {}
    for ds in lake.HOURLY_OUTPUTS:
        part = lake.partition(root, ds, HOUR).path
        part.mkdir(parents=True)
        for i in range(2):
            data = rng.randbytes(FILE_BYTES)
            (part / f"part-{i:05d}.bin").write_bytes(data)
            out[str((part / f"part-{i:05d}.bin").relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def cloud_files(store: MemoryStore) -> dict[str, str]:
    return {k: store.digest(k) for k in store.objects if not k.startswith("_manifests/")}


@pytest.fixture
def warm(tmp_path):
    """One replication of another lake first: modules imported, so their files are not counted."""
    replication.replicate_hour_to([MemoryStore("s3"), MemoryStore("gcs")], _lake(tmp_path / "warmup", 0)[0], HOUR)


def _lake(root: Path, seed: int) -> tuple[Path, dict[str, str]]:
    expected = make_hour(root, seed)
    return root, expected


class TestOneReadPerFile:
    def test_three_clouds_from_one_read_of_each_file(self, tmp_path, warm):
        root, expected = _lake(tmp_path / "lake", 1)
        total = len(expected) * FILE_BYTES
        clouds = [MemoryStore("s3"), MemoryStore("gcs"), MemoryStore("azure")]
        before = bytes_read()
        results = replication.replicate_hour_to(clouds, root, HOUR)
        read = bytes_read() - before
        for cloud, res in zip(clouds, results, strict=True):
            assert cloud_files(cloud) == expected, cloud.name  # digests of the bytes held, computed here
            assert (res.cloud, res.uploaded) == (cloud.name, len(expected))
        # each file once (plus the digest cache and manifests, a few KiB); two reads would be 2 × total
        assert total <= read < 1.2 * total, f"read {read / total:.2f} × the hour's bytes"

    def test_one_cloud_reads_each_file_once_though_the_digest_cache_is_cold(self, tmp_path, warm):
        root, expected = _lake(tmp_path / "lake", 2)
        total = len(expected) * FILE_BYTES
        s3 = MemoryStore("s3")
        before = bytes_read()
        replication.replicate_hour(s3, root, HOUR)
        read = bytes_read() - before
        assert cloud_files(s3) == expected
        assert total <= read < 1.2 * total, f"read {read / total:.2f} × the hour's bytes"
        # ... and the digests it recorded are the ones a separate hashing pass finds
        manifest = replication.read_manifest(s3, HOUR)
        assert {f["path"]: f["sha256"] for f in manifest["files"]} == expected

    def test_a_file_above_the_memory_bound_is_streamed_intact(self, tmp_path, warm):
        from include.replication.sending import BUFFER_MAX

        root, expected = _lake(tmp_path / "lake", 3)
        big = lake.partition(root, lake.HOURLY_OUTPUTS[0], HOUR).path / "part-big.bin"
        big.write_bytes(random.Random(3).randbytes(BUFFER_MAX + 1))  # not held in memory: streamed per cloud
        expected[str(big.relative_to(root))] = hashlib.sha256(big.read_bytes()).hexdigest()
        clouds = [MemoryStore("s3"), MemoryStore("azure")]
        replication.replicate_hour_to(clouds, root, HOUR)
        for cloud in clouds:
            assert cloud_files(cloud) == expected, cloud.name


class LossyCloud(MemoryStore):
    """A cloud whose wire flips one byte of every object and that checks nothing (as moto does)."""

    def upload_stream(self, stream, key, size, sha256, md5):
        data = bytearray(stream.read())
        data[len(data) // 2] ^= 0x01
        super().upload_stream(io.BytesIO(bytes(data)), key, size, sha256, md5)


class CheckingCloud(MemoryStore):
    """A cloud that refuses an upload whose bytes do not have the MD5 it was given (as GCS and Azure do)."""

    corrupt = False

    def upload_stream(self, stream, key, size, sha256, md5):
        data = bytearray(stream.read())
        if self.corrupt:
            data[len(data) // 2] ^= 0x01
        if hashlib.md5(data, usedforsecurity=False).digest() != md5:
            raise OSError(f"{self.name}: 400 the MD5 you specified did not match what we received ({key})")
        super().upload_stream(io.BytesIO(bytes(data)), key, size, sha256, md5)


class TestACorruptedUploadIsCaught:
    def test_a_cloud_that_checks_the_md5_refuses_it_and_no_manifest_is_written(self, tmp_path):
        root, expected = _lake(tmp_path / "lake", 4)
        honest, lossy = CheckingCloud("azure"), CheckingCloud("gcs")
        lossy.corrupt = True
        replication.replicate_hour(honest, root, HOUR)  # the MD5 sent is the one of the bytes read
        assert cloud_files(honest) == expected
        with pytest.raises(OSError, match="MD5"):
            replication.replicate_hour(lossy, root, HOUR)
        assert lossy.stat(KEY) is None and cloud_files(lossy) == {}

    def test_a_cloud_that_checks_nothing_is_found_by_verification(self, tmp_path):
        root, expected = _lake(tmp_path / "lake", 5)
        lossy, good = LossyCloud("s3"), MemoryStore("gcs")
        replication.replicate_hour_to([lossy, good], root, HOUR)
        assert cloud_files(lossy) != expected  # what landed is not what was sent...
        report = replication.verify_hour([lossy, good], root, HOUR)
        assert {(p.cloud, p.problem) for p in report.problems} == {("s3", "checksum mismatch")}
        assert {p.object for p in report.problems} == set(expected)  # ...and every such object is found


class TestSeveralCloudsFromOneRead:
    def test_one_cloud_failing_leaves_no_manifest_anywhere_and_the_rerun_completes(self, tmp_path):
        root, expected = _lake(tmp_path / "lake", 6)
        good, cut = MemoryStore("s3"), MemoryStore("azure")
        cut.fail_after = 3
        with pytest.raises(ConnectionResetError):
            replication.replicate_hour_to([good, cut], root, HOUR, workers=1)
        assert good.stat(KEY) is None and cut.stat(KEY) is None  # an hour half sent is complete nowhere
        held = set(cloud_files(good))
        assert 3 <= len(held) < len(expected)
        cut.fail_after = None
        good.writes.clear()
        results = replication.replicate_hour_to([good, cut], root, HOUR)
        assert [cloud_files(s) for s in (good, cut)] == [expected, expected]
        assert set(good.uploads) == set(expected) - held  # what had landed is not sent again
        assert [(r.cloud, r.objects) for r in results] == [("s3", len(expected)), ("azure", len(expected))]
        assert good.writes[-1] == KEY and cut.writes[-1] == KEY


class TestARewriteInTheSameTimestampTick:
    """One read per file sees a later rewrite only through the file's stat; on kernels before 6.13 a
    rewrite in the same tick as the previous change leaves mtime and ctime as they were. The stat taken
    before the read therefore waits until the last change is one timestamp step old (review of issue 16)."""

    def test_a_fresh_file_is_stat_again_after_one_step(self, tmp_path):
        from include.replication.digests import FINE_GRANULARITY_NS, settled_stat

        path = tmp_path / "part-0.parquet"
        path.write_bytes(b"x" * 64)
        changed = max(path.stat().st_mtime_ns, path.stat().st_ctime_ns)
        clock, slept = [changed + 10_000_000], []  # 10 ms after the last change

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            clock[0] += int(seconds * 1e9)

        st = settled_stat(path, now_ns=lambda: clock[0], sleep=sleep)
        assert len(slept) == 1 and slept[0] * 1e9 >= FINE_GRANULARITY_NS - 10_000_000
        assert clock[0] - max(st.st_mtime_ns, st.st_ctime_ns) > FINE_GRANULARITY_NS

    def test_an_old_file_is_not_delayed(self, tmp_path):
        from include.replication.digests import settled_stat

        path = tmp_path / "part-0.parquet"
        path.write_bytes(b"x" * 64)
        slept = []
        settled_stat(path, now_ns=lambda: path.stat().st_ctime_ns + 5_000_000_000, sleep=slept.append)
        assert slept == []

    def test_a_same_size_rewrite_after_the_read_leaves_no_manifest(self, tmp_path):
        root, _ = _lake(tmp_path / "lake", 2)
        target = next(p for p in root.rglob("*.bin"))
        store = MemoryStore("s3")
        original = store.upload_stream

        def rewrite_then_upload(stream, name, size, sha256, md5):
            if name == target.relative_to(root).as_posix():
                fd = os.open(target, os.O_WRONLY)
                try:
                    os.pwrite(fd, b"\x00" * 16, 0)  # same size, in place
                finally:
                    os.close(fd)
            return original(stream, name, size, sha256, md5)

        store.upload_stream = rewrite_then_upload
        with pytest.raises(replication.ReplicationError, match="changed while replicating"):
            replication.replicate_hour(store, root, HOUR)
        assert store.stat(KEY) is None
