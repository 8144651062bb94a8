"""A corrupted upload is still caught after issue 16's one-read replication, on the three real emulators.

The wire flips one byte of every object on its way to the SDK (a test double of the network around the
unchanged store; the store is told the digests of the bytes read from the lake). GCS and Azure refuse
the upload against the MD5 they are given, or the MD5 GCS reports back differs, so replication fails and
writes no manifest; moto checks no Content-MD5, so S3 accepts the bytes, and ``verify_hour``, which reads
every object back, reports each one and repairs it from the lake.
"""

from __future__ import annotations

import io

import pytest

from include import replication
from tests.integration.conftest import CLOUDS
from tests.integration.test_replication import HOUR, by_name, lake_files, make_hour
from tricloud.replication.stores import make_store

KEY = replication.manifest_key(HOUR)
#: what each emulator does with bytes that are not the ones hashed (moto does not check Content-MD5)
REFUSES = {"s3": False, "gcs": True, "azure": True}


def over_a_corrupting_wire(store):
    """The same store class, bucket and connection, behind a wire that flips one byte of each object."""

    class Wire(type(store)):
        def upload_stream(self, stream, key, size, sha256, md5):
            data = bytearray(stream.read())
            data[len(data) // 2] ^= 0x01
            return super().upload_stream(io.BytesIO(bytes(data)), key, size, sha256, md5)

    return Wire(store.bucket, store.conn_id)


@pytest.fixture
def lake_with_a_multipart_file(tmp_path):
    root = tmp_path / "lake"
    make_hour(root, big_rows=400_000)  # ~10 MB: S3 multipart, GCS resumable, Azure one Put Blob
    return root


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_corrupted_upload_is_refused_or_found_by_verify(stores, lake_with_a_multipart_file, cloud):
    root = lake_with_a_multipart_file
    store = by_name(stores)[cloud]
    wire = over_a_corrupting_wire(store)
    expected = lake_files(root)
    if REFUSES[cloud]:
        with pytest.raises(Exception) as caught:
            replication.replicate_hour(wire, root, HOUR)
        assert "MD5" in str(caught.value) or "md5" in str(caught.value).lower(), caught.value
        assert store.stat(KEY) is None  # no manifest: the hour is not complete in that cloud
        for key in expected:  # nothing landed whose bytes are not the lake's
            assert replication.remote_sha256(store, key) in (None, expected[key]), key
        return
    replication.replicate_hour(wire, root, HOUR)  # moto took the flipped bytes with the lake's digests
    report = replication.verify_hour([make_store(cloud, store.bucket)], root, HOUR)
    # The one PUT carries the lake's ChecksumSHA256, which moto stores without checking; reading the object
    # back, botocore validates the body against it (response checksum validation) and refuses it, so verify
    # sees the object as unreadable ("missing") rather than as other bytes ("checksum mismatch"): either
    # way every object is reported and repaired.
    assert {(p.cloud, p.object) for p in report.problems} == {(cloud, key) for key in expected}
    assert {p.problem for p in report.problems} <= {"checksum mismatch", "missing"}
    assert {(p.cloud, p.object) for p in report.repaired} == {(cloud, key) for key in expected}
    assert replication.verify_hour([store], root, HOUR).problems == []
