"""Replicate an hour (or a dataset directory) to one cloud or several: by content, manifest last.

Order of a run: every object (skipped when the cloud already holds it by size and SHA-256); from a local
lake each file is read once, its SHA-256 and MD5 computed over the bytes read, and those same bytes sent
to every cloud that lacks them (:mod:`include.replication.sending`); then the manifest, to the lake and
to the cloud, unless a newer version is already there; then the objects of the hour the manifest no
longer lists are removed, and the hour is listed once more: a listed object that is not there fails the
run.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from include import lake
from include.lake_commit import Lake, ObjectLake
from include.lake_fs import is_object_store
from include.replication.digests import checked_name, digest_cache_path, hour_digests, hour_files
from include.replication.manifests import (
    CUSTOMER_ENRICHMENT,
    Pipeline,
    content_sha256,
    dataset_manifest_key,
    entry_problem,
    hour_prefixes,
    manifest_bytes,
    manifest_from_digests,
    manifest_key,
    parse_manifest,
    pipeline_named,
    published_at,
    validate_manifest,
    version,
)
from include.replication.objects import (
    LocalStore,
    ManifestError,
    ObjectStore,
    ReplicationError,
    StaleRunError,
    parallel,
    put_bytes,
    read_bytes,
)
from include.replication.primary import ObjectLakeStore, as_lake, primary_store
from include.replication.results import Replicated
from include.replication.sending import send_local_files
from include.replication.uploads import changed_error, upload_verified, upload_verified_from

__all__ = [
    "changed_error",
    "publish_manifest",
    "remove_strays",
    "replicate_dataset",
    "replicate_hour",
    "replicate_hour_to",
    "upload_verified",
    "upload_verified_from",
]

log = logging.getLogger(__name__)


def replicate_hour(
    store: ObjectStore,
    lake_root: str | Path | Lake,
    hour: str | datetime,
    workers: int = 4,
    pipeline: str | Pipeline = CUSTOMER_ENRICHMENT,
) -> Replicated:
    """Bring one cloud's copy of the hour in line with the primary lake; manifest written last.

    The primary lake is a local directory or an object-store lake (``s3://…``, read through its commit
    pointers and streamed from there). Objects whose size and SHA-256 metadata already match are skipped
    (by content, not by name). From a local lake each file sent is read once (hashed as it is read).

    :raises ReplicationError: a file changed while it was read or sent, a listed object is missing
        afterwards, or a file name a cloud would rewrite; :class:`StaleRunError` when a newer version of
        the hour is already in the lake's or the cloud's manifest (this run is older and must not
        overwrite it).
    """
    return replicate_hour_to([store], lake_root, hour, workers, pipeline)[0]


def replicate_hour_to(
    stores: Sequence[ObjectStore],
    lake_root: str | Path | Lake,
    hour: str | datetime,
    workers: int = 4,
    pipeline: str | Pipeline = CUSTOMER_ENRICHMENT,
) -> list[Replicated]:
    """:func:`replicate_hour` to several clouds at once: each file of a local lake is read and hashed
    once and sent to every cloud side by side. One result per store, in the order given.

    The first failure (one cloud down) stops the run for every store and no manifest is written anywhere
    in this call; objects already sent to the other clouds stay (a re-run skips them), and a cloud's
    previous manifest keeps describing the previous commit until the re-run replaces it. The DAG keeps
    one task per cloud instead, so that a cloud that is down is retried on its own; this is for
    replicating from one process (tools, the benchmark).

    :raises ReplicationError: as :func:`replicate_hour`.
    """
    t0 = time.perf_counter()
    stores = list(stores)
    h, the_lake, pipeline = lake.parse_hour(hour), as_lake(lake_root), pipeline_named(pipeline)
    prefixes, key = hour_prefixes(h, pipeline), manifest_key(h, pipeline)
    checks = {"prefixes": prefixes, "hour": h}
    if isinstance(the_lake, ObjectLake):
        digests = hour_digests(the_lake, h, workers, pipeline)
        manifest = manifest_from_digests(the_lake.root, h, digests, pipeline)
        validate_manifest(manifest, cloud="local", key=key, prefixes=prefixes, hour=h)
        primary = primary_store(the_lake)
        sent = parallel(lambda s: _stream_all(s, primary, manifest, digests, workers), stores, len(stores))
    else:
        root = Path(the_lake.root)
        files = hour_files(root, h, pipeline)
        if not files:
            raise ReplicationError(
                f"nothing to replicate for hour {h:%Y-%m-%dT%H:00Z}: no outputs under {the_lake.root}"
            )
        _refuse_paths(root, files, prefixes)
        digests, sent = send_local_files(stores, root, files, digest_cache_path(root, h, pipeline), workers)
        manifest = manifest_from_digests(root, h, digests, pipeline)
        validate_manifest(manifest, cloud="local", key=key, prefixes=prefixes, hour=h)
        primary = LocalStore(root)
    return _finish(stores, primary, manifest, key, checks, sent, t0)


def replicate_dataset(store: ObjectStore, lake_root: str | Path, relpath: str, workers: int = 4) -> Replicated:
    """Replicate a whole, non-hourly dataset directory (e.g. ``athletes/mean_age_by_year``) the same way:
    incremental by SHA-256, one read per file sent, its manifest ``_manifests/datasets/<relpath>.json``
    written last.

    Local lakes only (the athletes job writes a local directory).
    """
    t0 = time.perf_counter()
    if is_object_store(str(lake_root)):
        raise ReplicationError(
            f"replicate_dataset reads a local directory; {lake_root} is an object store: the athletes job "
            "writes a local lake only (docs/design.md 'The lake on object storage')"
        )
    root = Path(lake_root)
    relpath = relpath.strip("/")
    files = sorted(
        p
        for p in (root / relpath).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise ReplicationError(f"nothing to replicate: {root / relpath} has no files")
    checks = {"prefixes": [relpath + "/"], "nested": True}
    _refuse_paths(root, files, **checks)
    cache = root / ".cache" / "digests" / "datasets" / f"{relpath}.json"
    digests, sent = send_local_files([store], root, files, cache, workers)
    entries = [{"path": r, "size": d["size"], "sha256": d["sha256"]} for r, d in sorted(digests.items())]
    manifest = {
        "dataset": relpath,
        "files": entries,
        "bytes": sum(d["size"] for d in digests.values()),
        "version": version(entries, max(d["ctime_ns"] for d in digests.values())),
    }
    key = dataset_manifest_key(relpath)
    validate_manifest(manifest, cloud="local", key=key, **checks)
    return _finish([store], LocalStore(root), manifest, key, checks, sent, t0)[0]


def _refuse_paths(root: Path, files: list[Path], prefixes: list[str], nested: bool = False) -> None:
    """Refuse, before anything is sent, a file the manifest could not list (its own check, applied early)."""
    for path in files:
        rel = checked_name(root, path)
        if problem := entry_problem(rel, prefixes, nested):
            raise ReplicationError(f"{rel!r}: {problem}; nothing was replicated")


def _stream_all(store: ObjectStore, primary: ObjectLakeStore, manifest: dict, digests: dict, workers: int) -> list[int]:
    """An object-store primary lake: stream each object the store lacks from its commit (hashed as sent)."""

    def sync(entry: dict) -> int:
        remote = store.stat(entry["path"])
        if remote and remote.size == entry["size"] and remote.sha256 == entry["sha256"]:
            return 0
        md5 = base64.b64decode(digests[entry["path"]]["md5"])
        key = entry["path"]
        upload_verified_from(store, lambda: primary.open_committed(key), f"{primary.bucket}/{key}", entry, md5)
        return entry["size"]

    return parallel(sync, manifest["files"], workers)


def publish_manifest(
    store: ObjectStore, manifest: dict, key: str, checks: dict, adopt: bool = False
) -> tuple[dict, int]:
    """Write ``manifest`` to ``store`` unless the store's current one is identical, or newer.

    With ``adopt`` (the lake's own manifest), a current manifest listing the same files is kept as is
    and returned, so its version (first publish time) carries on to every cloud. Returns the manifest
    now in place and the bytes sent. A current manifest that does not validate is replaced.

    :raises StaleRunError: the store holds a manifest of different content with a newer version.
    """
    body = read_bytes(store, key)
    current = None
    if body is not None:
        try:
            current = parse_manifest(body, cloud=store.name, key=key, **checks)
        except ManifestError as err:
            log.warning("%s; replacing it", err)
    if current is not None:
        if body == manifest_bytes(manifest):
            return manifest, 0
        if content_sha256(current["files"]) == manifest["version"]["content_sha256"]:
            if adopt and "version" in current:
                return current, 0
        elif published_at(current) > published_at(manifest):
            raise StaleRunError(
                f"{store.name}: {key} already holds a newer version of the hour (published "
                f"{current['version']['published_at']}) than this run's ({manifest['version']['published_at']}): "
                "an older run never replaces it, nothing was deleted; re-run replication to send the current data"
            )
    new_body = manifest_bytes(manifest)
    put_bytes(store, new_body, key)
    return manifest, len(new_body)


def remove_strays(store: ObjectStore, prefixes: list[str], manifest: dict, key: str) -> tuple[int, set[str]]:
    """Delete the objects under ``prefixes`` that ``manifest`` does not list; return (deleted, missing).

    The store's manifest is read again first: if another run has replaced it meanwhile, nothing is
    deleted (what the current manifest lists is never removed) and :class:`StaleRunError` is raised.
    """
    wanted = {f["path"] for f in manifest["files"]}
    listed = {k for prefix in prefixes for k in store.list_keys(prefix)}
    stale = sorted(k for k in listed if k not in wanted)
    if stale:
        if read_bytes(store, key) != manifest_bytes(manifest):
            raise StaleRunError(f"{store.name}: {key} was replaced by another run: stale objects left in place")
        store.delete(stale)
    return len(stale), wanted - listed


def _finish(
    stores: list[ObjectStore],
    primary: ObjectStore,
    manifest: dict,
    key: str,
    checks: dict,
    sent: list[list[int]],
    t0: float,
) -> list[Replicated]:
    """With every object in place: the manifest to the lake, then to each store; strays removed last."""
    # The lake keeps the manifest too: it is the reference verify_hour checks every copy against.
    manifest, _ = publish_manifest(primary, manifest, key, checks, adopt=True)

    def close(i: int) -> Replicated:
        store = stores[i]
        final, manifest_sent = publish_manifest(store, manifest, key, checks)
        # Only now, with the new manifest in place, remove objects of the hour it no longer lists.
        stale, missing = remove_strays(store, checks["prefixes"], final, key)
        if missing:
            raise ReplicationError(
                f"{store.name}: {len(missing)} object(s) the manifest lists are not in the bucket after "
                f"replication (e.g. {sorted(missing)[0]!r}): the cloud rewrote or lost them; re-run the task"
            )
        result = Replicated(
            cloud=store.name,
            bucket=store.bucket,
            hour=final.get("hour"),
            dataset=final.get("dataset"),
            objects=len(final["files"]),
            uploaded=sum(1 for s in sent[i] if s),
            skipped=sum(1 for s in sent[i] if not s),
            bytes_uploaded=sum(sent[i]) + manifest_sent,
            stale_deleted=stale,
            manifest=key,
            seconds=round(time.perf_counter() - t0, 3),
        )
        if not result.bytes_uploaded:
            log.info("%s: %s already in sync", store.name, final.get("hour") or final.get("dataset"))
        return result

    return parallel(close, range(len(stores)), len(stores))
