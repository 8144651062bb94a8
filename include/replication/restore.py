"""Restore hours from one surviving store into the primary lake (local or object store) or into another cloud."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from include import lake
from include.lake_commit import Lake, LocalLake
from include.replication.manifests import (
    CUSTOMER_ENRICHMENT,
    Pipeline,
    hour_prefixes,
    manifest_bytes,
    manifest_key,
    pipeline_named,
    read_manifest,
)
from include.replication.objects import (
    LocalStore,
    ManifestError,
    ObjectStore,
    ReplicationError,
    download_verified,
    file_digests,
    parallel,
    put_bytes,
)
from include.replication.primary import as_lake, primary_store
from include.replication.replicate import remove_strays, upload_verified
from include.replication.results import Restored


def list_hours(
    store: ObjectStore, start: datetime, end: datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT
) -> list[datetime]:
    """Hours in [start, end) for which the store holds a manifest of ``pipeline``."""
    hours = []
    for key in store.list_keys(f"_manifests/{pipeline_named(pipeline).name}/"):
        name = key.rsplit("/", 2)
        try:
            h = datetime.strptime(f"{name[-2]}/{name[-1]}", "date=%Y-%m-%d/hour=%H.json").replace(tzinfo=start.tzinfo)
        except (ValueError, IndexError):
            continue
        if start <= h < end:
            hours.append(h)
    return sorted(hours)


def _valid_elsewhere(others: Iterable[ObjectStore], hour: datetime, pipeline: str | Pipeline) -> list[str]:
    good = []
    for store in others:
        try:
            if read_manifest(store, hour, pipeline) is not None:
                good.append(store.name)
        except ManifestError:
            continue
    return good


def restore_hour(
    source: ObjectStore,
    hour: datetime,
    lake_root: str | Path | Lake | None = None,
    target: ObjectStore | None = None,
    others: Iterable[ObjectStore] = (),
    pipeline: str | Pipeline = CUSTOMER_ENRICHMENT,
) -> Restored:
    """Rebuild one hour from ``source`` into the primary lake (``lake_root``) or another cloud (``target``).

    The source's manifest is validated entry by entry before anything is written; every object is
    verified against it before it is published. A cloud target gets its manifest last and then holds
    exactly the manifest's objects under the hour's partitions; the lake gets whole partitions published
    through its commit protocol (a local directory: swapped in atomically, the root created when it does
    not exist — a lake lost with its disk; an object-store lake: committed by pointer), then the manifest.

    :param others: the other clouds; when the source's manifest is corrupt, the error names those
        holding a valid one to restore from instead.
    :raises ManifestError: the source's manifest does not parse or validate.
    :raises ReplicationError: no manifest, or an object that does not match it (nothing published).
    """
    if (lake_root is None) == (target is None):
        raise ValueError("give exactly one of lake_root or target")
    hour = lake.parse_hour(hour)
    try:
        manifest = read_manifest(source, hour, pipeline)
    except ManifestError as err:
        good = _valid_elsewhere(others, hour, pipeline)
        hint = f"restore from {' or '.join(good)} instead" if good else "no other cloud checked holds a valid one"
        raise ManifestError(f"{err}; nothing restored: {hint}") from None
    if manifest is None:
        raise ReplicationError(f"{source.name} has no manifest for hour {hour:%Y-%m-%dT%H:00Z}")
    t0 = time.perf_counter()
    the_lake = as_lake(lake_root) if lake_root is not None else None
    local_dir = the_lake.root if isinstance(the_lake, LocalLake) else None
    if local_dir is not None:
        Path(local_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=local_dir, prefix=".restore-") as tmp:
        staging = LocalStore(tmp)

        def fetch(entry: dict) -> int:
            path = staging.path(entry["path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            if not download_verified(source, entry, path):
                raise ReplicationError(f"{source.name}: {entry['path']} does not match its manifest: not restored")
            return entry["size"]

        restored = sum(parallel(fetch, manifest["files"], 4))
        if target is not None:

            def put(entry: dict) -> None:
                _, md5, _ = file_digests(staging.path(entry["path"]))
                upload_verified(target, staging.path(entry["path"]), entry, md5)

            parallel(put, manifest["files"], 4)
            key = manifest_key(hour, pipeline)
            put_bytes(target, manifest_bytes(manifest), key)
            remove_strays(target, hour_prefixes(hour, pipeline), manifest, key)
        else:
            parts = {str(Path(e["path"]).parent) for e in manifest["files"]}
            for rel in sorted(parts):
                stage = the_lake.staging_dir(lake.partition(the_lake.root, tuple(rel.split("/")[:2]), hour))
                os.replace(staging.path(rel), stage)
                the_lake.publish(rel, stage)
            put_bytes(primary_store(the_lake), manifest_bytes(manifest), manifest_key(hour, pipeline))
    return Restored(
        hour=manifest["hour"],
        source=source.name,
        target=target.name if target else ("local lake" if local_dir else "lake"),
        objects=len(manifest["files"]),
        bytes_restored=restored,
        seconds=round(time.perf_counter() - t0, 3),
    )
