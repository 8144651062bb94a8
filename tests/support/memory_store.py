"""An in-memory object store for the fast tier: one cloud's bucket as a dict, no server.

It implements :class:`include.replication.ObjectStore` as the provider-hook stores do (each object
keeps the SHA-256 it was uploaded with as metadata, as S3/GCS/Azure metadata does), and records what
happened so tests can assert on it: ``writes`` (every key written, in order) and ``uploads`` (data
objects sent). ``rot`` changes an object's bytes behind the store's back (the metadata keeps the old
digest, like bit rot or a tampered object); ``fail_after`` makes the n-th upload fail (a cut connection).
"""

from __future__ import annotations

import hashlib
import threading
from typing import BinaryIO

from include.replication import RemoteObject


class MemoryStore:
    def __init__(self, name: str, bucket: str = "mem") -> None:
        self.name = name
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}  # key -> (bytes, sha256 metadata)
        self.writes: list[str] = []
        self.fail_after: int | None = None  # uploads allowed before the next one fails
        self._lock = threading.Lock()

    @property
    def uploads(self) -> list[str]:
        """Data objects written (manifests excluded), in order."""
        return [k for k in self.writes if not k.startswith("_manifests/")]

    def _put(self, key: str, data: bytes, sha256: str) -> None:
        with self._lock:
            if self.fail_after is not None:
                if self.fail_after == 0:
                    raise ConnectionResetError(f"{self.name}: connection reset while sending {key}")
                self.fail_after -= 1
            self.objects[key] = (data, sha256)
            self.writes.append(key)

    # -- the ObjectStore protocol ------------------------------------------------------------------
    def stat(self, key: str) -> RemoteObject | None:
        if key not in self.objects:
            return None
        data, sha = self.objects[key]
        return RemoteObject(key, len(data), sha)

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> None:
        self._put(key, stream.read(), sha256)

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        self._put(key, bytes(data), sha256)

    def download_to(self, key: str, writer: BinaryIO) -> None:
        writer.write(self.objects[key][0])

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self.objects.pop(key, None)

    # -- for tests ------------------------------------------------------------------------------------
    def rot(self, key: str, data: bytes) -> None:
        """Replace the bytes of ``key``, keeping its old SHA-256 metadata (the store does not notice)."""
        self.objects[key] = (data, self.objects[key][1])

    def digest(self, key: str) -> str:
        return hashlib.sha256(self.objects[key][0]).hexdigest()
