"""Replicate an hour (or a dataset directory) to one cloud: by content, verified as sent, manifest last.

Order of a run: every object (skipped when the cloud already holds it by size and SHA-256), each hashed
from the very bytes streamed to the cloud and compared with the manifest; then the manifest, to the
lake and to the cloud, unless a newer version is already there; then the objects of the hour the
manifest no longer lists are removed, and the hour is listed once more: a listed object that is not
there fails the run.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO

from include import lake
from include.lake_commit import Lake
from include.lake_fs import is_object_store
from include.replication.digests import digests as file_digest_cache
from include.replication.digests import hour_digests
from include.replication.manifests import (
    CUSTOMER_ENRICHMENT,
    Pipeline,
    content_sha256,
    dataset_manifest_key,
    hour_prefixes,
    manifest_bytes,
    manifest_from_digests,
    manifest_key,
    parse_manifest,
    published_at,
    validate_manifest,
    version,
)
from include.replication.objects import (
    HashingReader,
    LocalStore,
    ManifestError,
    ObjectStore,
    ReplicationError,
    StaleRunError,
    parallel,
    put_bytes,
    read_bytes,
    remote_sha256,
)
from include.replication.primary import ObjectLakeStore, as_lake, primary_store
from include.replication.results import Replicated

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
    (by content, not by name).

    :raises ReplicationError: a file changed while it was sent, a listed object is missing afterwards,
        or a file name a cloud would rewrite; :class:`StaleRunError` when a newer version of the hour is
        already in the lake's or the cloud's manifest (this run is older and must not overwrite it).
    """
    t0 = time.perf_counter()
    h, the_lake = lake.parse_hour(hour), as_lake(lake_root)
    digests = hour_digests(the_lake, h, workers, pipeline)
    manifest = manifest_from_digests(the_lake.root, h, digests, pipeline)
    prefixes, key = hour_prefixes(h, pipeline), manifest_key(h, pipeline)
    validate_manifest(manifest, cloud="local", key=key, prefixes=prefixes, hour=h)
    checks = {"prefixes": prefixes, "hour": h}
    return _sync(store, primary_store(the_lake), manifest, digests, key, checks, workers, t0)


def replicate_dataset(store: ObjectStore, lake_root: str | Path, relpath: str, workers: int = 4) -> Replicated:
    """Replicate a whole, non-hourly dataset directory (e.g. ``athletes/mean_age_by_year``) the same way:
    incremental by SHA-256, its manifest ``_manifests/datasets/<relpath>.json`` written last.

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
    digests = file_digest_cache(root, files, root / ".cache" / "digests" / "datasets" / f"{relpath}.json", workers)
    entries = [{"path": r, "size": d["size"], "sha256": d["sha256"]} for r, d in sorted(digests.items())]
    manifest = {
        "dataset": relpath,
        "files": entries,
        "bytes": sum(d["size"] for d in digests.values()),
        "version": version(entries, max(d["ctime_ns"] for d in digests.values())),
    }
    checks = {"prefixes": [relpath + "/"], "nested": True}
    key = dataset_manifest_key(relpath)
    validate_manifest(manifest, cloud="local", key=key, **checks)
    return _sync(store, LocalStore(root), manifest, digests, key, checks, workers, t0)


def upload_verified(store: ObjectStore, path: Path, entry: dict, md5: bytes) -> None:
    """Send the local file ``path`` as ``entry['path']`` (see :func:`upload_verified_from`)."""
    upload_verified_from(store, partial(open, path, "rb"), path, entry, md5)


def upload_verified_from(
    store: ObjectStore, opener: Callable[[], BinaryIO], source: object, entry: dict, md5: bytes
) -> None:
    """Send the stream ``opener()`` returns as ``entry['path']``, hashing the bytes as they are streamed
    (one pass). ``source`` names where they come from, in errors.

    :raises ReplicationError: "changed while replicating" when the bytes sent are not the ones the
        manifest lists; the object just written is deleted, so the cloud holds no object that
        disagrees with its manifest.
    """
    key, path = entry["path"], source
    with opener() as f:
        reader = HashingReader(f)
        try:
            store.upload_stream(reader, key, entry["size"], entry["sha256"], md5)
        except Exception as err:
            # A cloud that checks Content-MD5 refuses the changed bytes itself: say what happened.
            if not reader.reread and reader.size >= entry["size"] and reader.hexdigest() != entry["sha256"]:
                raise _changed(store, path, entry, reader.hexdigest()) from err
            raise
    sent = reader.hexdigest() if not reader.reread else remote_sha256(store, key)
    if reader.size != entry["size"] or sent != entry["sha256"]:
        store.delete([key])
        raise _changed(store, path, entry, sent)
    after = store.stat(key)
    sha_ok = after is not None and (after.sha256 == entry["sha256"] or isinstance(store, LocalStore))
    if not after or after.size != entry["size"] or not sha_ok:
        raise ReplicationError(f"{store.name}: {key} did not land intact ({after})")


def _changed(store: ObjectStore, path: object, entry: dict, sent: str | None) -> ReplicationError:
    return ReplicationError(
        f"{store.name}: {path} changed while replicating (manifest SHA-256 {entry['sha256'][:12]}…, bytes sent "
        f"{(sent or '?')[:12]}…): the object was not kept and no manifest written; re-run the task"
    )


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


def _sync(
    store: ObjectStore,
    primary: ObjectStore,
    manifest: dict,
    digests: dict,
    key: str,
    checks: dict,
    workers: int,
    t0: float,
) -> dict:
    def sync(entry: dict) -> int:
        remote = store.stat(entry["path"])
        if remote and remote.size == entry["size"] and remote.sha256 == entry["sha256"]:
            return 0
        md5 = base64.b64decode(digests[entry["path"]]["md5"])
        if isinstance(primary, ObjectLakeStore):
            key = entry["path"]
            upload_verified_from(store, lambda: primary.open_committed(key), f"{primary.bucket}/{key}", entry, md5)
        else:
            upload_verified(store, primary.path(entry["path"]), entry, md5)
        return entry["size"]

    sent = parallel(sync, manifest["files"], workers)

    # The lake keeps the manifest too: it is the reference verify_hour checks every copy against.
    manifest, _ = publish_manifest(primary, manifest, key, checks, adopt=True)
    manifest, manifest_sent = publish_manifest(store, manifest, key, checks)

    # Only now, with the new manifest in place, remove objects of the hour it no longer lists.
    stale, missing = remove_strays(store, checks["prefixes"], manifest, key)
    if missing:
        raise ReplicationError(
            f"{store.name}: {len(missing)} object(s) the manifest lists are not in the bucket after replication "
            f"(e.g. {sorted(missing)[0]!r}): the cloud rewrote or lost them; re-run the task"
        )
    result = Replicated(
        cloud=store.name,
        bucket=store.bucket,
        hour=manifest.get("hour"),
        dataset=manifest.get("dataset"),
        objects=len(manifest["files"]),
        uploaded=sum(1 for s in sent if s),
        skipped=sum(1 for s in sent if not s),
        bytes_uploaded=sum(sent) + manifest_sent,
        stale_deleted=stale,
        manifest=key,
        seconds=round(time.perf_counter() - t0, 3),
    )
    if not result.bytes_uploaded:
        log.info("%s: %s already in sync", store.name, manifest.get("hour") or manifest.get("dataset"))
    return result
