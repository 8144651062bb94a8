"""What the commit pointer of an object-lake partition says, and how a committed file is described.

A partition ``<rel>/`` on an object store is committed by one object, the **pointer** ``<rel>/_commit.json``
(:data:`POINTER`), written last in one PUT: it names the attempt whose objects under ``<rel>/_attempts/``
(:data:`ATTEMPTS`) make up the partition, the commit time, and the name, size, SHA-256, MD5 and row count
of every file (:class:`Commit`, :class:`CommittedFile`). The protocol that writes and reads pointers is
:class:`include.lake_commit.ObjectLake` (docs/design.md "The lake on object storage"); the commit of what
a Spark job wrote to an attempt prefix is :mod:`include.lake_attempt`. This module is the pointer's format
only: no I/O but :func:`describe`'s read of one local file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

POINTER = "_commit.json"
ATTEMPTS = "_attempts"
#: Length of an attempt id (``<epoch ns, 20 digits>-<8 hex>``); every object under ``_attempts/`` starts with one.
ATTEMPT_ID_LEN = 29


class CommitError(RuntimeError):
    """A partition could not be committed or read consistently; the message says what to do."""


@dataclass(frozen=True)
class CommittedFile:
    """One file of a committed partition: name inside the partition, bytes, SHA-256 (hex), MD5 (base64),
    rows (Parquet files only, from the footer; None otherwise), and ``object``: where its bytes are,
    relative to ``<partition>/_attempts/``, when that is not ``<attempt>.<name>`` — a file Spark wrote to
    the attempt prefix (``<attempt>/part-00000-<uuid>-c000.snappy.parquet``), or bytes kept from an
    earlier commit (:mod:`include.lake_attempt`)."""

    name: str
    size: int
    sha256: str
    md5: str
    rows: int | None = None
    object: str | None = None


@dataclass(frozen=True)
class Commit:
    """What the pointer of a partition says: the attempt it names, when (ns since the epoch, UTC), its files."""

    relpath: str
    attempt: str
    committed_ns: int
    files: tuple[CommittedFile, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "files": [asdict(f) for f in self.files]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Commit:
        try:
            files = tuple(CommittedFile(**f) for f in doc["files"])
            return cls(doc["relpath"], doc["attempt"], int(doc["committed_ns"]), files)
        except (KeyError, TypeError, ValueError) as err:
            raise CommitError(
                f"commit pointer of {doc.get('relpath')!r} is malformed ({err}): re-run the hour"
            ) from None

    def file(self, name: str) -> CommittedFile | None:
        return next((f for f in self.files if f.name == name), None)


def describe(path: Path) -> CommittedFile:
    """Size, SHA-256, MD5 and (Parquet) row count of a local file, in one streaming pass plus a footer read."""
    # Imported here: include.replication imports include.lake_commit, which imports this module (its lake
    # store is an ObjectLake).
    from include.replication.objects import file_digests, md5_b64

    sha, md5, size = file_digests(path)
    rows = None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        with open(path, "rb") as f:
            rows = pq.read_metadata(f).num_rows
    return CommittedFile(path.name, size, sha, md5_b64(md5), rows)
