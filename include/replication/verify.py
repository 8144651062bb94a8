"""Verify an hour in every cloud and in the lake by reading the bytes back; repair from a verified copy.

The reference is the lake's own manifest when it validates, else the manifest most clouds agree on
(newest version on a tie). A manifest that does not parse or validate is that cloud's damage
("manifest corrupt"), repaired like a missing object. Objects under the hour's partitions that the
reference does not list are reported ("not in manifest") and removed from the clouds.

The primary lake may be a local directory or an object-store lake (``s3://…``); either is one store among
the others. It is overwritten from a cloud only when its file is damaged *without* having been changed
since the hour was replicated (bit rot keeps the inode change time; a rewrite does not): a file the
lake changed afterwards is newer data or an attack on the lake, and is reported, never overwritten.
Nor does one cloud's word alone overwrite lake bytes: with the lake's manifest gone and no two clouds
agreeing, the reference may fill in what the lake lost, but a differing lake file is only reported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from include import lake
from include.lake_commit import Lake
from include.replication.digests import FINE_GRANULARITY_NS
from include.replication.manifests import (
    CUSTOMER_ENRICHMENT,
    Pipeline,
    hour_prefixes,
    manifest_bytes,
    manifest_key,
    parse_manifest,
    published_at,
    read_manifest,
)
from include.replication.objects import (
    LocalStore,
    ManifestError,
    ObjectStore,
    ReplicationError,
    download_verified,
    file_digests,
    put_bytes,
    read_bytes,
    remote_sha256,
)
from include.replication.primary import ObjectLakeStore, is_primary, primary_store
from include.replication.replicate import upload_verified
from include.replication.results import Problem, VerifyReport

log = logging.getLogger(__name__)


def verify_hour(
    stores: Iterable[ObjectStore],
    lake_root: str | Path | Lake,
    hour: str | datetime,
    repair: bool = True,
    pipeline: str | Pipeline = CUSTOMER_ENRICHMENT,
) -> VerifyReport:
    """Re-read the hour in every cloud and in the primary lake, comparing SHA-256 of the actual bytes.

    The primary lake (a local directory, or an object-store lake read through its commit pointers) is one
    store among the others: any verified copy repairs any other. It differs in two rules only: its data is
    never deleted on a manifest's word, and a file it changed after replication is reported, not
    overwritten. Problems are :class:`~include.replication.results.Problem` values.

    :raises ReplicationError: no valid manifest of the hour anywhere.
    """
    h = lake.parse_hour(hour)
    stores = list(stores)
    local = primary_store(lake_root)
    key, prefixes = manifest_key(h, pipeline), hour_prefixes(h, pipeline)
    try:
        reference, source = read_manifest(local, h, pipeline), "lake manifest"
    except ManifestError as err:
        log.warning("%s", err)
        reference = None
    votes = 0  # clouds whose manifest is the reference, when the lake has none
    if reference is None:
        reference, source, votes = _majority_manifest(stores, h, pipeline)
    ref_body = manifest_bytes(reference)
    expected = {f["path"]: f for f in reference["files"]}
    replicas = [local, *stores]
    replicated_ns = _replicated_ns(local, key, reference)

    problems: list[Problem] = []
    healthy: dict[str, set[str]] = {}
    for store in replicas:
        ok: set[str] = set()
        for path, entry in expected.items():
            actual = remote_sha256(store, path)
            if actual == entry["sha256"]:
                ok.add(path)
            elif actual is None:
                problems.append(Problem(store.name, path, "missing"))
            elif store is local and _changed_ns(local, path) > replicated_ns:
                problems.append(Problem(store.name, path, "changed since replicated"))
            else:
                problems.append(Problem(store.name, path, "checksum mismatch"))
        for stray in _strays(store, prefixes, expected):
            problems.append(Problem(store.name, stray, "not in manifest"))
        if problem := _manifest_problem(store, key, ref_body, h, prefixes):
            problems.append(Problem(store.name, key, problem))
        healthy[store.name] = ok

    repaired: list[Problem] = []
    unrepaired: list[Problem] = []
    if not repair:
        unrepaired = list(problems)
    else:
        by_name = {s.name: s for s in replicas}
        done: dict[Problem, str | None] = {}
        if isinstance(local, ObjectLakeStore):
            done = _recommit_lost_partitions(local, problems, expected, by_name, healthy)
        for p in (p for p in problems if p.object != key):
            if p in done:
                src = done[p]
            elif p.cloud == local.name and p.problem == "checksum mismatch" and votes == 1:
                # The reference is one cloud's word alone (the lake's manifest is gone and no two clouds
                # agree): it may fill in what the lake lost, never overwrite bytes the lake still holds.
                src = None
            else:
                src = _repair(by_name[p.cloud], p, expected, by_name, healthy)
            (repaired if src else unrepaired).append(replace(p, source=src))
        blocking = {u.cloud for u in unrepaired if u.problem != "not in manifest"}
        for p in (p for p in problems if p.object == key):
            # A manifest is only rewritten once every object it lists is back.
            if p.cloud in blocking:
                unrepaired.append(p)
            else:
                put_bytes(by_name[p.cloud], ref_body, key)
                repaired.append(replace(p, source=source))
    return VerifyReport(
        hour=h.isoformat(),
        reference=source,
        clouds=[s.name for s in replicas],
        objects_checked=len(expected) * len(replicas),
        problems=problems,
        repaired=repaired,
        unrepaired=unrepaired,
    )


def _changed_ns(primary: ObjectStore, key: str) -> int:
    """When the primary last changed ``key``: a local file's ctime, an object lake partition's commit time."""
    if isinstance(primary, ObjectLakeStore):
        return primary.commit_ns(key)
    return primary.path(key).stat().st_ctime_ns


def _replicated_ns(local: ObjectStore, key: str, reference: dict) -> int:
    """When the lake last recorded the hour as replicated, less the timestamp granularity: a lake file whose
    ctime is later was changed since (not rot). In doubt (within the granularity) it counts as changed."""
    latest = int(published_at(reference).timestamp() * 1e9)
    if isinstance(local, ObjectLakeStore):
        latest = max(latest, local.modified_ns(key) or 0)
    elif (path := local.path(key)).is_file():
        latest = max(latest, path.stat().st_mtime_ns)
    return latest - FINE_GRANULARITY_NS


def _recommit_lost_partitions(
    primary: ObjectLakeStore,
    problems: list[Problem],
    expected: dict,
    stores: dict[str, ObjectStore],
    healthy: dict[str, set[str]],
) -> dict[Problem, str | None]:
    """Bring back, whole, the object lake's partitions whose commit is gone (objects cannot be put back one
    by one there without showing half a partition): every file of the partition is fetched from a store
    holding a verified copy, then the partition is committed. Returns the source per problem handled."""
    lost: dict[str, list[Problem]] = {}
    for p in problems:
        if p.cloud == primary.name and p.problem == "missing":
            relpath = p.object.rpartition("/")[0]
            if primary.lake.commit(relpath) is None:
                lost.setdefault(relpath, []).append(p)
    done: dict[Problem, str | None] = {}
    for relpath, items in lost.items():
        entries = [e for path, e in expected.items() if path.rpartition("/")[0] == relpath]
        with tempfile.TemporaryDirectory(prefix="tricloud-recommit-") as tmp:
            staging, sources = Path(tmp) / "partition", set()
            staging.mkdir()
            for entry in entries:
                src = _fetch_verified(entry, staging / entry["path"].rpartition("/")[2], stores, healthy, primary.name)
                if src is None:
                    break
                sources.add(src)
            else:
                primary.publish_partition(relpath, staging)
                healthy.setdefault(primary.name, set()).update(e["path"] for e in entries)
                done.update({p: ", ".join(sorted(sources)) for p in items})
                continue
        done.update({p: None for p in items})
    return done


def _fetch_verified(
    entry: dict, path: Path, stores: dict[str, ObjectStore], healthy: dict[str, set[str]], skip: str
) -> str | None:
    for name, other in stores.items():
        if name != skip and entry["path"] in healthy.get(name, set()) and download_verified(other, entry, path):
            return name
    return None


def _strays(store: ObjectStore, prefixes: list[str], expected: dict) -> list[str]:
    keys = [k for prefix in prefixes for k in store.list_keys(prefix) if k not in expected]
    # The lake may hold hidden files (editor or Spark leftovers) that replication never copies.
    return [k for k in keys if not (isinstance(store, LocalStore) and k.rsplit("/", 1)[-1].startswith("."))]


def _manifest_problem(store: ObjectStore, key: str, ref_body: bytes, h: datetime, prefixes: list[str]) -> str | None:
    try:
        body = read_bytes(store, key)
    except Exception as err:
        log.warning("%s: reading %s failed: %s", store.name, key, err)
        return "manifest missing"
    if body is None:
        return "manifest missing"
    if body == ref_body:
        return None
    try:
        parse_manifest(body, cloud=store.name, key=key, prefixes=prefixes, hour=h)
    except ManifestError as err:
        log.warning("%s", err)
        return "manifest corrupt"
    return "manifest differs"


def _majority_manifest(stores: list[ObjectStore], hour: datetime, pipeline: str | Pipeline) -> tuple[dict, str, int]:
    """The manifest most clouds hold byte-identically (newest version on a tie), where it came from, and
    how many clouds hold it."""
    votes: dict[bytes, list[str]] = {}
    manifests: dict[bytes, dict] = {}
    corrupt: list[str] = []
    for store in stores:
        try:
            m = read_manifest(store, hour, pipeline)
        except ManifestError as err:
            log.warning("%s", err)
            corrupt.append(str(err))
            continue
        if m is not None:
            body = manifest_bytes(m)
            votes.setdefault(body, []).append(store.name)
            manifests[body] = m
    if not votes:
        detail = f" ({'; '.join(corrupt)})" if corrupt else ""
        raise ReplicationError(f"hour {hour:%Y-%m-%dT%H:00Z} has no valid manifest in the lake or in any cloud{detail}")
    body = max(votes, key=lambda b: (len(votes[b]), published_at(manifests[b])))
    return manifests[body], f"manifest of {', '.join(votes[body])}", len(votes[body])


def _repair(
    store: ObjectStore, problem: Problem, expected: dict, stores: dict[str, ObjectStore], healthy: dict[str, set[str]]
) -> str | None:
    if problem.problem == "changed since replicated":
        return None  # newer data or an attack on the lake: a person decides (re-replicate, or restore)
    if problem.problem == "not in manifest":
        if is_primary(store):
            return None  # never delete lake data on the strength of a manifest
        store.delete([problem.object])
        return "manifest"
    entry = expected[problem.object]
    for name, other in stores.items():
        if name == store.name or entry["path"] not in healthy.get(name, set()):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "object"
            if download_verified(other, entry, path):
                _, md5, _ = file_digests(path)
                try:
                    upload_verified(store, path, entry, md5)
                except ReplicationError as err:
                    if not isinstance(store, ObjectLakeStore):
                        raise
                    # An object lake takes back only the bytes its commit lists: anything else is a
                    # restore (reported unrepaired, with the reason in the log).
                    log.warning("%s: %s not repaired: %s", store.name, entry["path"], err)
                    return None
                healthy.setdefault(store.name, set()).add(entry["path"])
                return "local lake" if isinstance(other, LocalStore) else name
    return None
