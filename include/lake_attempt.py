"""Committing files a writer put on the object store itself: Spark on a cluster, and small additions.

On EMR the executors write Parquet with Spark straight to the object store (EMRFS ``s3://``); there is
no local staging directory to hand to :meth:`include.lake_commit.ObjectLake.publish`. The commit
protocol is the same (docs/design.md "The lake on object storage"), with the attempt written by Spark:

1. the driver picks a fresh attempt id and Spark writes the partition to the **attempt prefix**
   ``<rel>/_attempts/<attempt>/`` (:func:`attempt_uri`): a prefix nobody else writes, so whatever Spark
   leaves there is this attempt's;
2. :func:`commit_written` lists what Spark wrote, takes exactly the files Spark's own readers would
   read (Hadoop's rule: names starting with ``_`` or ``.`` are not data — ``_SUCCESS``, ``_temporary/``,
   EMRFS ``_$folder$`` markers, ``.crc``), hashes each by streaming it (SHA-256, MD5, size, and rows from
   the Parquet footer), and writes the **pointer** last, naming each object (``CommittedFile.object``)
   under a stable logical name ``part-00000.parquet``, … (as :func:`include.lake.tidy_staging` names
   them locally);
3. every object of older attempts is deleted, and so are Spark's leftovers in this one.

An unchanged re-run keeps the committed bytes (as :func:`include.lake.keep_unchanged_files` does on a
local lake): where a new file holds exactly the rows of the committed one, the pointer keeps naming the
committed object and the new one is deleted, so replication sends nothing. :func:`amend` adds small files
(a job's ``_summary.json``) to a committed partition with a new pointer that keeps the data objects.

No Spark and no Airflow here: the objects are read through the lake's pyarrow file system.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import replace

from include.lake_commit import _CHUNK, ObjectLake
from include.lake_pointer import Commit, CommitError, CommittedFile


def attempt_uri(the_lake: ObjectLake, relpath: str, attempt: str) -> str:
    """The URI Spark writes attempt ``attempt`` of partition ``relpath`` to (``s3://…/<rel>/_attempts/<id>``)."""
    return f"{the_lake.root}/{relpath.strip('/')}/_attempts/{attempt}"


def _attempt_dir(the_lake: ObjectLake, relpath: str, attempt: str) -> str:
    return f"{the_lake.attempts_key(relpath)}/{attempt}"


def written_files(the_lake: ObjectLake, relpath: str, attempt: str) -> list[str]:
    """The data objects Spark wrote for ``attempt`` (file system paths, sorted by name).

    Only objects whose names do not start with ``_`` or ``.`` (what Spark's and Hadoop's readers skip as
    hidden); only Parquet files directly in the attempt prefix are expected.

    :raises CommitError: a visible object is not Parquet, or lies in a sub-prefix (a ``partitionBy``
        write): the writer put something unexpected there.
    """
    base = _attempt_dir(the_lake, relpath, attempt) + "/"
    found = []
    for key in the_lake.list(base.rstrip("/")):
        name = key[len(base) :]
        if name.startswith(("_", ".")):
            continue
        if "/" in name or not name.endswith(".parquet"):
            raise CommitError(
                f"{the_lake.root}/{relpath}: attempt {attempt} holds {name!r}, which is not Parquet "
                "directly in the attempt prefix (no partitionBy): "
                "only the job's Spark output may be written to an attempt prefix; nothing was committed"
            )
        found.append(key)
    return sorted(found)


def describe_object(the_lake: ObjectLake, key: str, name: str, obj: str) -> CommittedFile:
    """Size, SHA-256, MD5 and Parquet row count of the object ``key``, streamed once plus a footer read."""
    import pyarrow.parquet as pq

    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with the_lake.fs.open_input_stream(key) as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    with the_lake.fs.open_input_file(key) as f:
        rows = pq.read_metadata(f).num_rows
    return CommittedFile(name, size, sha.hexdigest(), base64.b64encode(md5.digest()).decode(), rows, obj)


def _pinned(the_lake: ObjectLake, commit: Commit, entry: CommittedFile) -> CommittedFile:
    """``entry`` of ``commit`` with its object named explicitly, so a later pointer can keep it."""
    key = the_lake.object_key(commit, entry.name)
    return replace(entry, object=key[len(the_lake.attempts_key(commit.relpath)) + 1 :])


def _same_rows(the_lake: ObjectLake, old_key: str, new_key: str) -> bool:
    import pyarrow.parquet as pq

    try:
        with the_lake.fs.open_input_file(old_key) as old, the_lake.fs.open_input_file(new_key) as new:
            return pq.read_table(old).equals(pq.read_table(new))
    except Exception:  # an unreadable committed object is simply replaced
        return False


def commit_written(
    the_lake: ObjectLake, relpath: str, attempt: str, before_pointer: Callable[[], None] | None = None
) -> Commit:
    """Commit the Parquet files Spark wrote to :func:`attempt_uri` as partition ``relpath`` (see the module
    docstring). On any failure this attempt's objects are deleted and the previous commit stays (unless the
    pointer landed although its PUT reported an error: :meth:`ObjectLake.abandon`).

    :param before_pointer: called right before the pointer is written (after the files are hashed), e.g.
        the hour lease's fencing check, so no takeover can slip in between the check and the commit; what
        it raises aborts the commit.
    :returns: the new commit (what the pointer now says).
    :raises CommitError: an unexpected object in the attempt, no Parquet file at all, or a newer attempt
        committed meanwhile.
    """
    relpath = relpath.strip("/")
    prefix = the_lake.attempts_key(relpath) + "/"
    try:
        current = the_lake._commit_or_none(relpath)
        the_lake.refuse_if_superseded(relpath, attempt, current)  # before "no Parquet": its objects are gone
        written = written_files(the_lake, relpath, attempt)
        if not written:
            raise CommitError(
                f"Spark wrote no Parquet file to {attempt_uri(the_lake, relpath, attempt)}: nothing was committed "
                "(the previous commit stays); check the job's output path and its committer settings"
            )
        files = []
        for i, key in enumerate(written):
            name = f"part-{i:05d}.parquet"
            entry = describe_object(the_lake, key, name, key[len(prefix) :])
            old = current.file(name) if current is not None else None
            if old is not None and old.rows == entry.rows and old.sha256 != entry.sha256:
                if _same_rows(the_lake, the_lake.object_key(current, name), key):
                    entry = _pinned(the_lake, current, old)
            elif old is not None and old.sha256 == entry.sha256:
                entry = _pinned(the_lake, current, old)
            files.append(entry)
        commit = Commit(relpath, attempt, time.time_ns(), tuple(files))
        if before_pointer is not None:
            before_pointer()
        the_lake.write_pointer(commit)
    except BaseException:
        the_lake.abandon(relpath, attempt, attempt_objects(the_lake, relpath, attempt))
        raise
    the_lake.remove_other_attempts(relpath, attempt, commit)
    return commit


def attempt_objects(the_lake: ObjectLake, relpath: str, attempt: str) -> list[str]:
    """Every object of ``attempt`` (its prefix, ``<attempt>.<name>`` files and ``<attempt>_$folder$`` markers)."""
    prefix = the_lake.attempts_key(relpath) + "/"
    return [k for k in the_lake.list(prefix.rstrip("/")) if k[len(prefix) :].startswith(attempt)]


def amend(the_lake: ObjectLake, relpath: str, files: dict[str, bytes], expected: str | None = None) -> Commit:
    """Add (or replace) small files of the committed partition ``relpath``: a new attempt holds them, and
    a new pointer lists them beside the partition's other files, whose objects are kept as they are.

    :param files: file name in the partition → bytes (e.g. ``{"_summary.json": b"{…}"}``).
    :param expected: the attempt whose commit is being amended (the one this writer committed); when the
        pointer names another one, another writer committed since, and its files are not amended with ours.
    :raises CommitError: the partition was never committed (commit its data first), the pointer is not
        ``expected``'s, or a newer attempt committed meanwhile.
    """
    relpath = relpath.strip("/")
    current = the_lake.commit(relpath)
    if current is None:
        raise CommitError(f"{the_lake.root}/{relpath} has no commit to amend: commit the partition's data first")
    if expected is not None and current.attempt != expected:
        raise CommitError(
            f"{the_lake.root}/{relpath}: attempt {current.attempt} was committed after this writer's "
            f"{expected}; its files are left as they are (one writer per hour: see include/lease.py)"
        )
    attempt = the_lake.new_attempt()
    kept = [_pinned(the_lake, current, f) for f in current.files if f.name not in files]
    added = []
    try:
        for name, data in sorted(files.items()):
            the_lake.put(the_lake.key(f"{relpath}/_attempts/{attempt}.{name}"), data)
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            added.append(CommittedFile(name, len(data), hashlib.sha256(data).hexdigest(), md5))
        commit = Commit(relpath, attempt, time.time_ns(), tuple(sorted(kept + added, key=lambda f: f.name)))
        the_lake.write_pointer(commit)
    except BaseException:
        the_lake.abandon(relpath, attempt, attempt_objects(the_lake, relpath, attempt))
        raise
    the_lake.remove_other_attempts(relpath, attempt, commit)
    return commit
