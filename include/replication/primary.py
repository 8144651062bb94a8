"""The primary lake as one store among the replica stores, wherever it lives.

A local lake is :class:`~include.replication.objects.LocalStore`. A lake on an object store
(:class:`include.lake_commit.ObjectLake`) is :class:`ObjectLakeStore`: the same logical keys as every
replica (``clean/customer_activity/date=…/hour=10/part-00000.parquet``), resolved through each partition's
commit pointer to the attempt object that holds the bytes; the SHA-256 the pointer records plays the part
of a replica's ``sha256`` metadata. Keys under ``_manifests/`` are plain objects.

Writes of partition data are limited to what the commit protocol allows without a new commit: putting
back the very bytes the pointer lists (a deleted or damaged object, repaired by verification). A
partition whose pointer is gone is brought back whole through :meth:`ObjectLakeStore.publish_partition`
(restore, and verification's repair of the primary).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import BinaryIO

from include.lake_commit import Lake, ObjectLake, as_lake
from include.lake_pointer import Commit
from include.replication.objects import LocalStore, ObjectStore, RemoteObject, ReplicationError

log = logging.getLogger(__name__)

MANIFESTS = "_manifests/"


def primary_store(lake_root: str | Path | Lake) -> ObjectStore:
    """The primary lake as a store: :class:`LocalStore` for a directory, :class:`ObjectLakeStore` for a URI."""
    lake = as_lake(lake_root)
    return ObjectLakeStore(lake) if isinstance(lake, ObjectLake) else LocalStore(lake.root)


def is_primary(store: ObjectStore) -> bool:
    """Whether ``store`` is the primary lake (whose data is never deleted on a manifest's word)."""
    return isinstance(store, LocalStore | ObjectLakeStore)


class ObjectLakeStore:
    """An :class:`~include.lake_commit.ObjectLake` seen through the :class:`ObjectStore` interface."""

    name = "lake"

    def __init__(self, lake: ObjectLake) -> None:
        self.lake = lake
        self.bucket = lake.root

    def _split(self, key: str) -> tuple[str, str]:
        if key.startswith("/") or ".." in key.split("/"):
            raise ReplicationError(f"lake: {key!r} is not a path inside the lake {self.lake.root}: refused")
        relpath, _, name = key.rpartition("/")
        return relpath, name

    def _committed(self, key: str) -> tuple[Commit | None, str]:
        relpath, name = self._split(key)
        return self.lake.commit(relpath), name

    def commit_ns(self, key: str) -> int:
        """When the partition holding ``key`` was last committed (ns since the epoch); 0 without a commit."""
        commit, _ = self._committed(key)
        return commit.committed_ns if commit else 0

    def modified_ns(self, key: str) -> int | None:
        """Last-modified time of a plain object (manifests), ns; None when absent."""
        from pyarrow import fs

        info = self.lake.fs.get_file_info(self.lake.key(key))
        return info.mtime_ns if info.type == fs.FileType.File else None

    def stat(self, key: str) -> RemoteObject | None:
        from pyarrow import fs

        if key.startswith(MANIFESTS):
            info = self.lake.fs.get_file_info(self.lake.key(key))
            return RemoteObject(key, info.size, None) if info.type == fs.FileType.File else None
        commit, name = self._committed(key)
        entry = commit.file(name) if commit else None
        if entry is None:
            return None
        info = self.lake.fs.get_file_info(self.lake.object_key(commit, name))
        return RemoteObject(key, info.size, entry.sha256) if info.type == fs.FileType.File else None

    def _target(self, key: str, sha256: str) -> str:
        if key.startswith(MANIFESTS):
            return self.lake.key(key)
        commit, name = self._committed(key)
        entry = commit.file(name) if commit else None
        if entry is None or entry.sha256 != sha256:
            raise ReplicationError(
                f"lake: {key} is not what the partition's commit lists: a partition changes only by a new commit "
                "(restore the hour: RestoreLakeOperator / restore_hour)"
            )
        return self.lake.object_key(commit, name)

    def upload_stream(self, stream: BinaryIO, key: str, size: int, sha256: str, md5: bytes) -> None:
        with self.lake.fs.open_output_stream(self._target(key, sha256)) as out:
            shutil.copyfileobj(stream, out, 1 << 20)

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        self.lake.put(self._target(key, sha256), data)

    def download_to(self, key: str, writer: BinaryIO) -> None:
        if key.startswith(MANIFESTS):
            self.lake.download_to(self.lake.key(key), writer)
            return
        commit, name = self._committed(key)
        if commit is None or commit.file(name) is None:
            raise FileNotFoundError(f"lake: {key} is in no committed partition")
        self.lake.download_to(self.lake.object_key(commit, name), writer)

    def open_committed(self, key: str):
        """A readable stream of a committed file's bytes (what replication sends)."""
        commit, name = self._committed(key)
        if commit is None or commit.file(name) is None:
            raise ReplicationError(f"lake: {key} is in no committed partition: re-run the hour")
        return self.lake.fs.open_input_stream(self.lake.object_key(commit, name))

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``_manifests/…`` (plain objects), or the committed files of one partition
        (``zone/dataset/date=…/hour=HH/``). Any other prefix would expose attempt objects: refused."""
        if prefix.startswith(MANIFESTS):
            base = self.lake.base + "/"
            return [k[len(base) :] for k in self.lake.list(self.lake.key(prefix).rstrip("/"))]
        relpath = prefix.rstrip("/")
        if not prefix.endswith("/") or not relpath.rpartition("/")[2].startswith("hour="):
            raise ReplicationError(f"lake: list a partition (…/hour=HH/) or {MANIFESTS}…, not {prefix!r}")
        names = self.lake.file_names(relpath) or []
        return [f"{relpath}/{n}" for n in names]

    def delete(self, keys: list[str]) -> None:
        data = [k for k in keys if not k.startswith(MANIFESTS)]
        if data:
            raise ReplicationError(f"lake: refusing to delete committed data {data[:3]}: only a new commit replaces it")
        self.lake.delete([self.lake.key(k) for k in keys])

    def publish_partition(self, relpath: str, staging: Path) -> None:
        """Commit ``staging`` (a local directory of verified files) as the partition ``relpath``."""
        self.lake.publish(relpath, staging)
