"""The driver output Dataproc writes to GCS, read through the google provider's ``GCSHook``.

Dataproc writes what a driver prints as ``<uri>.000000000``, ``.000000001``, … in order (a job's
``driverOutputResourceUri``, a batch's ``runtimeInfo.outputUri``). The task log follows it from a byte
offset, and only what follows that offset is downloaded (ranged reads), not the whole output at every poll.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tricloud.cluster import aws

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/key`` → ``(bucket, key)``."""
    bucket, _, key = uri[len("gs://") :].partition("/")
    return bucket, key


def reads_after(objects: list[tuple[str, int]], offset: int) -> list[tuple[str, int]]:
    """Which objects to read, from which byte, for the output after byte ``offset``.

    :param objects: ``(name, size in bytes)`` in output order (``<uri>.000000000``, ``.000000001``, …).
    :returns: ``(name, first byte to read)`` of every object holding bytes at or after ``offset``;
        objects wholly before it are not read again.
    """
    reads, start = [], 0
    for name, size in objects:
        if start + size > offset:
            reads.append((name, max(0, offset - start)))
        start += size
    return reads


def read_output(gcs: GCSHook, uri: str, offset: int = 0) -> bytes:
    """The driver output under ``uri`` from byte ``offset`` on: Dataproc writes it as ``<uri>.000000000``,
    ``.000000001``, … in order; only the objects (and the part of the first) after ``offset`` are downloaded
    (a ranged read through the hook's storage client)."""
    bucket_name, key = split_gs(uri)
    bucket = gcs.get_conn().bucket(bucket_name)
    blobs = {b.name: b for b in bucket.list_blobs(prefix=key)}
    sizes = [(name, blobs[name].size or 0) for name in sorted(blobs)]
    return b"".join(blobs[name].download_as_bytes(start=start or None) for name, start in reads_after(sizes, offset))


def log_tail(gcs: GCSHook, uri: str | None, lines: int = aws.LOG_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of the driver output at ``uri``; None when there is none (yet)."""
    if not uri:
        return None
    text = read_output(gcs, uri).decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) or None


def new_lines(gcs: GCSHook, uri: str | None, offset: int) -> tuple[list[str], int]:
    """Complete lines of the driver output after byte ``offset``, and the next offset (a partial last line waits).

    Reads only what follows ``offset`` (:func:`read_output`), not the whole output at every poll.
    """
    if not uri:
        return [], offset
    data = read_output(gcs, uri, offset)
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", errors="replace").splitlines(), offset + end
