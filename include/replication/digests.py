"""Hashing the lake's files once per change: the digest cache.

Like git's index: a file whose stat is unchanged is not read again, so an unchanged re-run costs a few
``stat`` calls and the three replication tasks share one hashing pass. Unlike a size + mtime cache, it
cannot be fooled by a same-size rewrite whose old mtime was put back (``cp -p``, ``rsync -t``,
``tar -x``, 1-second timestamps): an entry is keyed on size, mtime, **inode and ctime** (ctime cannot be
set back from user space), and an entry hashed within the filesystem's timestamp granularity of the
file's last change is never trusted ("racily clean" in git's words): the file may have changed again
in the same clock tick.

Local lakes only: an object-store lake (``s3://…``) needs no cache, because its commit pointers already
hold every file's SHA-256, MD5 and size, recorded from the bytes the writer sent (:func:`committed_digests`);
the cache functions refuse such a root rather than create a ``s3:/…`` directory or ``.cache/`` under the
working directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from include import lake
from include.lake_commit import Lake, ObjectLake
from include.lake_fs import is_object_store
from include.replication.manifests import CUSTOMER_ENRICHMENT, Pipeline, manifest_from_digests, pipeline_named
from include.replication.objects import ReplicationError, file_digests, md5_b64, parallel
from include.replication.primary import as_lake

#: An entry is trusted only if it was hashed this long after the file's last change (ns). Linux
#: filesystems with nanosecond timestamps advance them per kernel tick (a few ms): 100 ms covers it.
FINE_GRANULARITY_NS = 100_000_000
#: ... and on filesystems that keep whole seconds (a ctime on an exact second), two seconds (FAT's step).
COARSE_GRANULARITY_NS = 2_000_000_000


def _local_only(root: str | Path) -> None:
    if is_object_store(str(root)) or str(root).startswith(("s3:/", "gs:/")):
        raise ReplicationError(
            f"{root} is an object store: the digest cache is for a local lake; an object lake's digests come from "
            "its commit pointers (hour_digests / committed_digests)"
        )


def digest_cache_path(root: Path, h: datetime, pipeline: Pipeline) -> Path:
    return root / ".cache" / "digests" / pipeline.name / f"date={h:%Y-%m-%d}" / f"hour={h:%H}.json"


def checked_name(root: Path, path: Path) -> str:
    """``path`` relative to ``root``; :class:`ReplicationError` when a cloud would rewrite that name."""
    rel = str(path.relative_to(root))
    if problem := lake.object_name_problem(rel):
        raise ReplicationError(
            f"{rel!r}: the name {problem}; rename the file (or fix the job that wrote it): nothing was replicated"
        )
    return rel


def hour_files(
    lake_root: str | Path, hour: str | datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT
) -> list[Path]:
    """The files of the hour's output partitions in a local lake (hidden files excluded), sorted.

    :raises ReplicationError: ``lake_root`` is an object store (see :func:`committed_digests`).
    """
    _local_only(lake_root)
    root, h = Path(lake_root), lake.parse_hour(hour)
    files = []
    for ds in pipeline_named(pipeline).outputs:
        part = lake.partition(root, ds, h)
        if part.path.is_dir():
            files += sorted(p for p in part.path.iterdir() if p.is_file() and not p.name.startswith("."))
    return files


def hour_digests(
    lake_root: str | Path | Lake, hour: str | datetime, workers: int = 4, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT
) -> dict[str, dict]:
    """SHA-256, MD5 (base64), size and change time (``ctime_ns``) of every file of the hour, keyed by
    lake-relative path. A local lake is hashed (through the digest cache); an object lake's commit pointers
    already hold the digests (and ``rows``), recorded from the bytes the writer sent.

    :raises ReplicationError: the hour has no files, or a file has a name a cloud would rewrite
        (:func:`include.lake.object_name_problem`) — before anything is sent.
    """
    the_lake, h, pipeline = as_lake(lake_root), lake.parse_hour(hour), pipeline_named(pipeline)
    if isinstance(the_lake, ObjectLake):
        found = committed_digests(the_lake, h, pipeline)
    else:
        root = Path(the_lake.root)
        files = hour_files(root, h, pipeline)
        found = digests(root, files, digest_cache_path(root, h, pipeline), workers) if files else {}
    if not found:
        raise ReplicationError(f"nothing to replicate for hour {h:%Y-%m-%dT%H:00Z}: no outputs under {the_lake.root}")
    return found


def committed_digests(the_lake: ObjectLake, h: datetime, pipeline: Pipeline) -> dict[str, dict]:
    """The digests an object lake's commit pointers hold for the hour's partitions (no object is read)."""
    found: dict[str, dict] = {}
    for ds in pipeline.outputs:
        relpath = lake.partition("/", ds, h).relpath
        commit = the_lake.commit(relpath)
        for f in commit.files if commit else ():
            rel = f"{relpath}/{f.name}"
            if problem := lake.object_name_problem(rel):
                raise ReplicationError(
                    f"{rel!r}: the name {problem}; fix the job that wrote it: nothing was replicated"
                )
            found[rel] = {
                "size": f.size,
                "sha256": f.sha256,
                "md5": f.md5,
                "ctime_ns": commit.committed_ns,
                "rows": f.rows,
            }
    return found


def build_manifest(
    lake_root: str | Path | Lake, hour: str | datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT
) -> dict:
    """Describe the hour as it is in the primary lake now."""
    the_lake = as_lake(lake_root)
    return manifest_from_digests(the_lake.root, hour, hour_digests(the_lake, hour, pipeline=pipeline), pipeline)


def granularity_ns(st: os.stat_result) -> int:
    """How far apart two changes of the file must be for its timestamps to tell them apart (ns, a bound)."""
    return COARSE_GRANULARITY_NS if st.st_ctime_ns % 1_000_000_000 == 0 else FINE_GRANULARITY_NS


def settled_stat(
    path: Path, now_ns: Callable[[], int] = time.time_ns, sleep: Callable[[float], None] = time.sleep
) -> os.stat_result:
    """``path``'s stat, taken once its last change is at least one timestamp step old.

    A single read of a file can only detect a rewrite after the read by its stat (size, mtime, ctime,
    inode). On kernels before 6.13 (and on network file systems with cached attributes) a rewrite within
    the same timestamp tick as the previous change leaves mtime and ctime unchanged; waiting until the
    last change is older than :func:`granularity_ns` makes any later write move ctime. Files written more
    than ~100 ms before replication (every DAG run) are not delayed.

    :returns: the ``os.stat_result`` after the wait (at most one step: 100 ms, 2 s on whole-second file systems).
    """
    st = path.stat()
    for _ in range(3):  # a file still being written keeps moving: the read's own checks catch it after that
        age = now_ns() - max(st.st_mtime_ns, st.st_ctime_ns)
        margin = granularity_ns(st)
        if age > margin:
            return st
        sleep((margin - age) / 1e9 + 0.001)
        st = path.stat()
    return st


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies a version of a file: size, mtime, ctime (ns) and inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def hash_entry(path: Path, st: os.stat_result) -> dict:
    """Hash ``path`` (whose stat before reading is ``st``) into a cache entry: size, mtime_ns, ctime_ns,
    ino, hashed_ns (epoch ns, taken before the read), sha256 (hex) and md5 (base64).

    :raises ReplicationError: the file changed while it was read (its stat or size moved).
    """
    hashed_ns = time.time_ns()  # before reading: a change during the read is later than this
    sha, md5, size = file_digests(path)
    if stat_key(path.stat()) != stat_key(st) or size != st.st_size:
        raise ReplicationError(f"{path} changed while it was being hashed: re-run the task")
    return {
        "size": size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "hashed_ns": hashed_ns,
        "sha256": sha,
        "md5": md5_b64(md5),
    }


def trusted(hit: dict | None, st: os.stat_result) -> bool:
    """Whether the cache entry ``hit`` still describes the file whose stat is ``st`` (see the module doc)."""
    if not hit:
        return False
    if (hit.get("size"), hit.get("mtime_ns"), hit.get("ctime_ns"), hit.get("ino")) != stat_key(st):
        return False
    return hit.get("hashed_ns", 0) - max(st.st_mtime_ns, st.st_ctime_ns) > granularity_ns(st)


def digests(root: Path, files: list[Path], cache_file: Path, workers: int) -> dict[str, dict]:
    """Digests of ``files`` (under the local lake ``root``), read from ``cache_file`` where trusted, hashed
    otherwise.

    :raises ReplicationError: ``root`` or ``cache_file`` is on an object store, or a file changed while hashed.
    """
    _local_only(root)
    cache = load_cache(cache_file)

    def digest(path: Path) -> tuple[str, dict]:
        rel = checked_name(root, path)
        st = path.stat()
        hit = cache.get(rel)
        if trusted(hit, st):
            return rel, hit
        return rel, hash_entry(path, st)

    result = dict(parallel(digest, files, workers))
    save_cache(cache_file, result, cache)
    return result


def load_cache(cache_file: Path) -> dict[str, dict]:
    """The digest cache's entries by lake-relative path ({} when absent or unreadable: hash again)."""
    _local_only(cache_file)
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}


def save_cache(cache_file: Path, entries: dict[str, dict], previous: dict[str, dict]) -> None:
    """Write ``entries`` as the cache (atomically), unless they equal what it already holds."""
    if entries != previous:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        lake.write_json(cache_file, entries)
