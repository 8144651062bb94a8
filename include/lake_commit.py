"""How an hour partition is committed to the lake, on a local directory or on an object store.

One small interface (:class:`Lake`) for every lake writer and reader; :func:`open_lake` picks the
implementation from ``LAKE_ROOT``:

- :class:`LocalLake` (a directory): the writer fills a staging directory and
  :func:`include.lake.publish_dir` swaps it in with one directory rename — unchanged behaviour.
- :class:`ObjectLake` (``s3://bucket/prefix`` or ``gs://bucket/prefix``): an object store has no atomic
  directory rename, so a partition ``<rel>/`` is committed with a pointer (docs/design.md "The lake on object storage"):

  1. the writer fills a local staging directory, as on a local lake;
  2. every file goes to a fresh **attempt** ``<rel>/_attempts/<attempt>.<name>`` (attempt ids
     sort by time: ``<epoch ns, 20 digits>-<8 hex>``), never over a committed object;
  3. the **pointer** ``<rel>/_commit.json`` is written last, in one PUT (atomic on S3, GCS and Azure
     Blob): attempt id, commit time and name, size, SHA-256, MD5 and row count of every file (its format:
     :mod:`include.lake_pointer`);
  4. then every other attempt under ``<rel>/_attempts/`` is deleted: a re-run leaves no stale object.

  Readers read the pointer first and only the objects it lists. A reader that finds a listed object
  gone (a re-run moved the pointer and removed the old attempt meanwhile) reads the pointer again and
  starts over, so it returns the old partition or the new one, never a mix. A writer that dies before
  step 3 leaves an orphan attempt that readers never see and the next commit deletes.

No Airflow here: the plugin side hands in a pyarrow file system built from the lake's connection
(``aws_default`` or ``google_cloud_default``, :mod:`tricloud.lake`); without one, pyarrow reads the
standard client settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from include import lake
from include.lake_fs import default_deleter, is_object_store
from include.lake_fs import filesystem as lake_filesystem
from include.lake_pointer import ATTEMPT_ID_LEN, ATTEMPTS, POINTER, Commit, CommitError, describe

#: A reader retries this many times when a re-run replaces the partition under it.
READ_RETRIES = 5
_CHUNK = 1 << 20


class Lake(Protocol):
    """A lake root. ``relpath`` is a partition path such as ``clean/customer_activity/date=…/hour=10``."""

    root: str

    def staging_dir(self, part: lake.HourPartition) -> Path: ...
    def publish(self, relpath: str, staging: Path) -> None: ...
    def file_names(self, relpath: str) -> list[str] | None: ...
    def read_partition(self, relpath: str, suffix: str = ".parquet") -> dict[str, bytes] | None: ...


def _visible(staging: Path) -> list[Path]:
    return sorted(p for p in staging.iterdir() if p.is_file() and not p.name.startswith("."))


class LocalLake:
    """A lake in a local directory: partitions are directories swapped in by one rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)

    def staging_dir(self, part: lake.HourPartition) -> Path:
        return lake.staging_dir(self.root, part)

    def publish(self, relpath: str, staging: Path) -> None:
        lake.publish_dir(staging, Path(self.root) / relpath)

    def file_names(self, relpath: str) -> list[str] | None:
        path = Path(self.root) / relpath
        return [p.name for p in _visible(path)] if path.is_dir() else None

    def read_partition(self, relpath: str, suffix: str = ".parquet") -> dict[str, bytes] | None:
        path = Path(self.root) / relpath
        if not path.is_dir():
            return None
        return {p.name: p.read_bytes() for p in _visible(path) if p.name.endswith(suffix)}


class ObjectLake:
    """A lake under ``s3://bucket/prefix`` or ``gs://bucket/prefix``: partitions committed by pointer (see the
    module docstring).

    :param root: the lake URI, e.g. ``s3://lake/prod`` or ``gs://lake/prod``.
    :param filesystem: a pyarrow file system for the URI's scheme; default ``FileSystem.from_uri``.
    :param delete_objects: deletes a list of ``bucket/key`` paths. pyarrow's ``delete_file`` on S3 leaves an
        empty ``…/`` directory marker object behind when a "directory" empties (measured with pyarrow 26 on
        moto), so the plugin side passes the provider hook's ``delete_objects``; without a ``filesystem``
        (a Spark driver: standard client settings) boto3's ``DeleteObjects`` is the default on S3 when boto3
        is installed, else pyarrow's ``delete_file`` (always on GCS, which leaves no marker behind).
    """

    def __init__(
        self, root: str, filesystem: Any = None, delete_objects: Callable[[list[str]], None] | None = None
    ) -> None:
        from urllib.parse import urlsplit

        self.root = root.rstrip("/")
        url = urlsplit(self.root)
        self.base = f"{url.netloc}{url.path}".rstrip("/")
        if filesystem is None:
            filesystem, _ = lake_filesystem(self.root)
            if delete_objects is None:  # the standard client settings, as for the file system (a Spark driver)
                delete_objects = default_deleter(self.root)
        self.fs = filesystem
        self._delete_objects = delete_objects

    # -- physical keys --------------------------------------------------------------------------
    def key(self, relpath: str) -> str:
        """The file system path (``bucket/prefix/<relpath>``) of a lake-relative path."""
        return f"{self.base}/{relpath.strip('/')}"

    def _attempt_key(self, relpath: str, attempt: str, name: str) -> str:
        return self.key(f"{relpath}/{ATTEMPTS}/{attempt}.{name}")

    def attempts_key(self, relpath: str) -> str:
        """The file system path of a partition's ``_attempts`` prefix (no trailing ``/``)."""
        return self.key(f"{relpath.strip('/')}/{ATTEMPTS}")

    @staticmethod
    def new_attempt() -> str:
        """A fresh attempt id; ids sort by creation time (``<epoch ns, 20 digits>-<8 hex>``)."""
        return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"

    # -- raw objects ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(key) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as err:  # pyarrow reports a missing S3 object as OSError on some versions
            if "NoSuchKey" in str(err) or "does not exist" in str(err):
                return None
            raise

    def put(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(key) as stream:
            stream.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as src, self.fs.open_output_stream(key) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    def download_to(self, key: str, writer: BinaryIO) -> None:
        with self.fs.open_input_stream(key) as stream:
            while chunk := stream.read(_CHUNK):
                writer.write(chunk)

    def list(self, prefix_key: str) -> list[str]:
        """Every object below ``prefix_key`` (recursive), as file system paths; [] when there is none."""
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(prefix_key, recursive=True, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == fs.FileType.File)

    def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        if self._delete_objects is not None:
            self._delete_objects(keys)
            return
        for key in keys:
            try:
                self.fs.delete_file(key)
            except FileNotFoundError:
                continue

    # -- the commit protocol --------------------------------------------------------------------
    def commit(self, relpath: str) -> Commit | None:
        """The partition's current commit (its pointer), or None when it was never committed."""
        body = self.get(self.key(f"{relpath}/{POINTER}"))
        if body is None:
            return None
        try:
            return Commit.from_dict(json.loads(body))
        except ValueError as err:
            raise CommitError(f"{self.root}/{relpath}/{POINTER} is not JSON ({err}): re-run the hour") from None

    def _commit_or_none(self, relpath: str) -> Commit | None:
        """The current commit for a writer: a malformed pointer is replaced by the new commit, not fatal."""
        try:
            return self.commit(relpath)
        except CommitError:
            return None

    def object_key(self, commit: Commit, name: str) -> str:
        """The file system path of the object holding the committed file ``name`` of ``commit``."""
        entry = commit.file(name)
        if entry is not None and entry.object:
            return f"{self.attempts_key(commit.relpath)}/{entry.object}"
        return self._attempt_key(commit.relpath, commit.attempt, name)

    def refuse_if_superseded(self, relpath: str, attempt: str, latest: Commit | None) -> None:
        """:raises CommitError: ``latest`` (the partition's current commit) is of a newer attempt than ``attempt``."""
        if latest is not None and latest.attempt > attempt:
            raise CommitError(
                f"{self.root}/{relpath}: a newer attempt ({latest.attempt}) was committed while this one "
                f"({attempt}) was writing; this attempt is dropped (one writer per hour: see include/lease.py)"
            )

    def write_pointer(self, commit: Commit) -> None:
        """Write ``commit`` as the partition's pointer, in one PUT, unless a newer attempt committed meanwhile.

        :raises CommitError: the current pointer names a newer attempt than ``commit``'s.
        """
        self.refuse_if_superseded(commit.relpath, commit.attempt, self._commit_or_none(commit.relpath))
        pointer = json.dumps(commit.to_dict(), sort_keys=True, indent=1).encode()
        self.put(self.key(f"{commit.relpath}/{POINTER}"), pointer)

    def staging_dir(self, part: lake.HourPartition) -> Path:
        """A fresh local directory for a writer to fill before :meth:`publish` (removed by publish)."""
        path = Path(tempfile.mkdtemp(prefix=f"tricloud-{part.zone}.{part.dataset}.{part.start:%Y%m%d%H}-"))
        shutil.rmtree(path)  # writers (Spark, DuckDB) create the directory themselves, as on a local lake
        return path

    def publish(self, relpath: str, staging: Path) -> None:
        """Commit the files of ``staging`` as partition ``relpath``: attempt objects, pointer, old attempts
        deleted. ``staging`` is removed afterwards.

        :raises CommitError: a newer attempt was committed meanwhile (nothing of this attempt is kept).
        """
        relpath = relpath.strip("/")
        lake.tidy_staging(staging)
        current = self._commit_or_none(relpath)
        if current is not None:
            self._keep_unchanged(current, staging)
        attempt = self.new_attempt()
        files = tuple(describe(p) for p in _visible(staging))
        try:
            for f in files:
                self.put_file(self._attempt_key(relpath, attempt, f.name), staging / f.name)
            commit = Commit(relpath, attempt, time.time_ns(), files)
            self.write_pointer(commit)
        except BaseException:
            self.abandon(relpath, attempt, [self._attempt_key(relpath, attempt, f.name) for f in files])
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.remove_other_attempts(relpath, attempt, commit)

    def abandon(self, relpath: str, attempt: str, keys: list[str]) -> None:
        """Delete ``keys`` (attempt ``attempt``'s objects) after its commit failed, unless the pointer names
        ``attempt`` after all: a pointer PUT can land although its caller saw an error (a lost reply, a
        failing close), and deleting then would leave a pointer to nothing. When the pointer cannot be
        read, the objects are left for the next commit to remove (they belong to an older attempt then)."""
        try:
            current = self.commit(relpath)
        except Exception:
            return
        if current is None or current.attempt != attempt:
            self.delete(keys)

    def remove_other_attempts(self, relpath: str, keep: str, commit: Commit | None = None) -> int:
        """Delete every object under ``<relpath>/_attempts/`` of an attempt older than ``keep``, and those of
        ``keep`` itself that ``commit`` (its pointer) does not list (Spark's ``_SUCCESS``, directory markers);
        objects ``commit`` lists are kept whatever attempt wrote them, and newer attempts belong to a writer
        still at work. Returns the number of objects deleted."""
        if commit is not None and getattr(self._commit_or_none(relpath), "attempt", None) != keep:
            return 0  # another writer's pointer replaced ``keep``'s meanwhile: its objects are not ours to judge
        prefix = self.attempts_key(relpath) + "/"
        listed = {self.object_key(commit, f.name) for f in commit.files} if commit is not None else set()
        stale = []
        for k in self.list(prefix.rstrip("/")):
            attempt = k[len(prefix) : len(prefix) + ATTEMPT_ID_LEN]
            if k not in listed and (attempt < keep or (attempt == keep and commit is not None)):
                stale.append(k)
        self.delete(stale)
        return len(stale)

    def _keep_unchanged(self, current: Commit, staging: Path) -> None:
        """Where a new Parquet file holds the rows of the committed one, keep the committed bytes (as
        :func:`include.lake.publish_dir` does), so an unchanged re-run replicates nothing."""
        with tempfile.TemporaryDirectory(prefix="tricloud-committed-") as tmp:
            old_dir = Path(tmp)
            for new in staging.glob("part-*.parquet"):
                if (old := current.file(new.name)) is not None and old.size:
                    with open(old_dir / new.name, "wb") as f:
                        self.download_to(self.object_key(current, new.name), f)
            lake.keep_unchanged_files(staging, old_dir)

    # -- readers --------------------------------------------------------------------------------
    def file_names(self, relpath: str) -> list[str] | None:
        commit = self.commit(relpath)
        return None if commit is None else [f.name for f in commit.files]

    def read_partition(self, relpath: str, suffix: str = ".parquet") -> dict[str, bytes] | None:
        """The bytes of the committed files whose names end with ``suffix``, all from one commit.

        :raises CommitError: the partition kept changing under the reader (:data:`READ_RETRIES` times).
        """
        for _ in range(READ_RETRIES):
            commit = self.commit(relpath)
            if commit is None:
                return None
            out: dict[str, bytes] = {}
            for f in commit.files:
                if not f.name.endswith(suffix):
                    continue
                body = self.get(self.object_key(commit, f.name))
                if body is None:
                    break  # a re-run removed this attempt after moving the pointer: read the new one
                if hashlib.sha256(body).hexdigest() != f.sha256:
                    raise CommitError(
                        f"{self.root}/{relpath}/{f.name} does not match its commit pointer (SHA-256): "
                        "restore the hour from a replica (dags/restore_lake.py)"
                    )
                out[f.name] = body
            else:
                return out
        raise CommitError(f"{self.root}/{relpath} changed {READ_RETRIES} times while being read: re-run the reader")


def open_lake(
    root: str | Path, filesystem: Any = None, delete_objects: Callable[[list[str]], None] | None = None
) -> Lake:
    """The lake at ``root``: :class:`ObjectLake` for an object-store URI (its parameters), else :class:`LocalLake`."""
    if is_object_store(str(root)):
        return ObjectLake(str(root), filesystem, delete_objects)
    return LocalLake(root)


def as_lake(lake_root: str | Path | Lake) -> Lake:
    """``lake_root`` opened with :func:`open_lake` (an open lake is returned as is)."""
    if isinstance(lake_root, LocalLake | ObjectLake):
        return lake_root
    return open_lake(lake_root)


def read_tables(the_lake: Lake, relpath: str) -> Any | None:
    """The Parquet files of a committed partition as one ``pyarrow.Table`` (all from one commit), None when
    the partition does not exist or holds no Parquet file. Names are never parsed (see include/paths.py);
    Spark's INT96 timestamps come back in microseconds, as :func:`include.paths.read_parquet_files` does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = the_lake.read_partition(relpath, ".parquet")
    if not files:
        return None
    tables = [pq.read_table(pa.BufferReader(files[n]), coerce_int96_timestamp_unit="us") for n in sorted(files)]
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def relpath(dataset: tuple[str, str], start: Any) -> str:
    """The lake-relative path of a dataset's hour partition (no root)."""
    return lake.partition("/", dataset, start).relpath
