"""The object-store interface replication talks to, the local lake as one more store, and hashing I/O.

Everything here is cloud-agnostic: the Airflow side (``tricloud.replication.stores``) implements
:class:`ObjectStore` with the provider hooks.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

log = logging.getLogger(__name__)

CHUNK = 1 << 20

T = TypeVar("T")
R = TypeVar("R")


class ReplicationError(RuntimeError):
    """A replica could not be written, verified or restored; the message names the cloud and the fix."""


class ManifestError(ReplicationError):
    """A manifest that does not parse or validate: that cloud's damage, never instructions to follow."""


class StaleRunError(ReplicationError):
    """A newer replication of the hour is already in place: this (older) run must not overwrite it."""


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    sha256: str | None  # from object metadata; None when the object carries none


class ObjectStore(Protocol):
    """One bucket (or container) of one cloud, or the local lake.

    ``upload_stream`` sends ``stream`` (``size`` bytes) and stores ``sha256`` as object metadata and ``md5``
    (raw digest) for the cloud's own upload check where it has one. The stream is either seekable (the
    file's bytes in memory, read and hashed once: the SDK may send parts in parallel and retry a part) or
    not (a :class:`HashingReader`: read once, front to back). It may return the object as the cloud
    reports it in the upload's response (GCS returns the object resource); None means "stat it".
    """

    name: str
    bucket: str

    def stat(self, key: str) -> RemoteObject | None: ...
    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> RemoteObject | None: ...
    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None: ...
    def download_to(self, key: str, writer: BinaryIO) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete(self, keys: list[str]) -> None: ...


# -- hashing I/O ---------------------------------------------------------------------------------
class HashingWriter:
    """A write-only file object that hashes (and optionally forwards) what is written to it."""

    def __init__(self, forward: BinaryIO | None = None) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.forward = forward

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self.forward is not None:
            self.forward.write(data)
        return len(data)

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


class HashingReader:
    """A read-only, non-seekable view of a file that hashes the bytes as an SDK reads them to send them.

    Saying ``seekable() == False`` makes boto3, the GCS client and the Azure SDK read front to back
    once. If an SDK still seeks back (a GCS resumable chunk retried), the bytes read again may differ
    from the ones hashed: :attr:`reread` is then True and the caller must verify by reading back.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._sha = hashlib.sha256()
        self._pos = 0
        self.size = 0  # bytes hashed, i.e. the highest position read
        self.reread = False

    def read(self, n: int | None = -1) -> bytes:
        # read() for the rest: pyarrow's streams (an object lake) refuse read(-1)
        data = self._f.read() if n is None or n < 0 else self._f.read(n)
        end = self._pos + len(data)
        if self._pos > self.size:
            self.reread = True  # a gap: bytes were skipped, the hash cannot cover them
        elif end > self.size:
            if self._pos < self.size:
                self.reread = True
            self._sha.update(data[self.size - self._pos :])
            self.size = end
        elif data:
            self.reread = True
        self._pos = end
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def file_digests(path: Path) -> tuple[str, bytes, int]:
    """SHA-256 (hex), MD5 (raw, for Content-MD5 checks by the cloud) and size, in one streaming pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.digest(), size


def md5_b64(md5: bytes) -> str:
    return base64.b64encode(md5).decode()


class Buffer:
    """A write-only file object collecting bytes in memory (small objects: manifests)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def read_bytes(store: ObjectStore, key: str) -> bytes | None:
    """The whole object (meant for manifests), or None when it does not exist."""
    if store.stat(key) is None:
        return None
    buf = Buffer()
    store.download_to(key, buf)
    return buf.getvalue()


def download_verified(store: ObjectStore, entry: dict, path: Path) -> bool:
    """Download ``entry['path']`` to ``path``; True when its size and SHA-256 are the entry's."""
    with open(path, "wb") as f:
        writer = HashingWriter(forward=f)
        store.download_to(entry["path"], writer)
    return writer.hexdigest() == entry["sha256"] and writer.size == entry["size"]


def put_bytes(store: ObjectStore, data: bytes, key: str) -> None:
    store.upload_bytes(data, key, hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).digest())


def remote_sha256(store: ObjectStore, key: str) -> str | None:
    """SHA-256 of the object's actual bytes (read back), or None when it is missing or unreadable."""
    if store.stat(key) is None:
        return None
    writer = HashingWriter()
    try:
        store.download_to(key, writer)
    except Exception as err:
        log.warning("%s: reading %s failed: %s", store.name, key, err)
        return None
    return writer.hexdigest()


def parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """Map over a thread pool; on the first failure cancel what has not started and re-raise."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- the local lake as a store ---------------------------------------------------------------------
class LocalStore:
    """The local lake seen as one more replica (for verification, repair and its own manifests).

    Every key is resolved inside the root; a key that would leave it raises :class:`ReplicationError`
    (a second line of defence behind manifest validation).
    """

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.bucket = str(self.root)

    def path(self, key: str) -> Path:
        root = self.root
        path = Path(os.path.normpath(root / key))
        if key.startswith("/") or not path.is_relative_to(root) or path == root:
            raise ReplicationError(f"local: {key!r} is not a path inside the lake {root}: refused")
        return path

    def stat(self, key: str) -> RemoteObject | None:
        path = self.path(key)
        return RemoteObject(key, path.stat().st_size, None) if path.is_file() else None

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(stream, f, CHUNK)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    def download_to(self, key: str, writer: BinaryIO) -> None:
        with open(self.path(key), "rb") as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.is_dir():
            return []
        return [str(p.relative_to(self.root)) for p in sorted(base.rglob("*")) if p.is_file()]

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)
