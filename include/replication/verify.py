"""Verify an hour in every cloud and in the lake by reading the bytes back; repair from a verified copy.

The reference is the lake's own manifest when it validates, else the manifest most clouds agree on
(newest version on a tie). A manifest that does not parse or validate is that cloud's damage
("manifest corrupt"), repaired like a missing object. Objects under the hour's partitions that the
reference does not list are reported ("not in manifest") and removed from the clouds.

The lake is overwritten from a cloud only when its file is damaged *without* having been changed
since the hour was replicated (bit rot keeps the inode change time; a rewrite does not): a file the
lake changed afterwards is newer data or an attack on the lake, and is reported, never overwritten.
Nor does one cloud's word alone overwrite lake bytes: with the lake's manifest gone and no two clouds
agreeing, the reference may fill in what the lake lost, but a differing lake file is only reported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from include import lake
from include.replication.digests import FINE_GRANULARITY_NS
from include.replication.manifests import (
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
from include.replication.replicate import upload_verified

log = logging.getLogger(__name__)


def verify_hour(
    stores: Iterable[ObjectStore], lake_root: str | Path, hour: str | datetime, repair: bool = True
) -> dict:
    """Re-read the hour in every cloud and in the local lake, comparing SHA-256 of the actual bytes.

    Returns ``hour``, ``reference`` (where the reference manifest came from), ``clouds``,
    ``objects_checked`` and lists of ``problems``, ``repaired`` and ``unrepaired``, each item
    ``{"cloud", "object", "problem"[, "source"]}``. Problems: ``missing``, ``checksum mismatch``,
    ``changed since replicated`` (lake only, never overwritten), ``not in manifest``,
    ``manifest missing``, ``manifest corrupt``, ``manifest differs``.

    :raises ReplicationError: no valid manifest of the hour anywhere.
    """
    h = lake.parse_hour(hour)
    stores = list(stores)
    local = LocalStore(lake_root)
    key, prefixes = manifest_key(h), hour_prefixes(h)
    try:
        reference, source = read_manifest(local, h), "lake manifest"
    except ManifestError as err:
        log.warning("%s", err)
        reference = None
    votes = 0  # clouds whose manifest is the reference, when the lake has none
    if reference is None:
        reference, source, votes = _majority_manifest(stores, h)
    ref_body = manifest_bytes(reference)
    expected = {f["path"]: f for f in reference["files"]}
    replicas = [local, *stores]
    replicated_ns = _replicated_ns(local, key, reference)

    problems: list[dict] = []
    healthy: dict[str, set[str]] = {}
    for store in replicas:
        ok: set[str] = set()
        for path, entry in expected.items():
            actual = remote_sha256(store, path)
            if actual == entry["sha256"]:
                ok.add(path)
            elif actual is None:
                problems.append({"cloud": store.name, "object": path, "problem": "missing"})
            elif store is local and local.path(path).stat().st_ctime_ns > replicated_ns:
                problems.append({"cloud": store.name, "object": path, "problem": "changed since replicated"})
            else:
                problems.append({"cloud": store.name, "object": path, "problem": "checksum mismatch"})
        for stray in _strays(store, prefixes, expected):
            problems.append({"cloud": store.name, "object": stray, "problem": "not in manifest"})
        if problem := _manifest_problem(store, key, ref_body, h, prefixes):
            problems.append({"cloud": store.name, "object": key, "problem": problem})
        healthy[store.name] = ok

    repaired: list[dict] = []
    unrepaired: list[dict] = []
    if not repair:
        unrepaired = list(problems)
    else:
        by_name = {s.name: s for s in replicas}
        for p in (p for p in problems if p["object"] != key):
            if p["cloud"] == local.name and p["problem"] == "checksum mismatch" and votes == 1:
                # The reference is one cloud's word alone (the lake's manifest is gone and no two clouds
                # agree): it may fill in what the lake lost, never overwrite bytes the lake still holds.
                unrepaired.append({**p, "source": None})
                continue
            src = _repair(by_name[p["cloud"]], p, expected, by_name, healthy)
            (repaired if src else unrepaired).append({**p, "source": src})
        blocking = {u["cloud"] for u in unrepaired if u["problem"] != "not in manifest"}
        for p in (p for p in problems if p["object"] == key):
            # A manifest is only rewritten once every object it lists is back.
            if p["cloud"] in blocking:
                unrepaired.append({**p, "source": None})
            else:
                put_bytes(by_name[p["cloud"]], ref_body, key)
                repaired.append({**p, "source": source})
    return {
        "hour": h.isoformat(),
        "reference": source,
        "clouds": [s.name for s in replicas],
        "objects_checked": len(expected) * len(replicas),
        "problems": problems,
        "repaired": repaired,
        "unrepaired": unrepaired,
    }


def _replicated_ns(local: LocalStore, key: str, reference: dict) -> int:
    """When the lake last recorded the hour as replicated, less the timestamp granularity: a lake file whose
    ctime is later was changed since (not rot). In doubt (within the granularity) it counts as changed."""
    latest = int(published_at(reference).timestamp() * 1e9)
    if (path := local.path(key)).is_file():
        latest = max(latest, path.stat().st_mtime_ns)
    return latest - FINE_GRANULARITY_NS


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


def _majority_manifest(stores: list[ObjectStore], hour: datetime) -> tuple[dict, str, int]:
    """The manifest most clouds hold byte-identically (newest version on a tie), where it came from, and
    how many clouds hold it."""
    votes: dict[bytes, list[str]] = {}
    manifests: dict[bytes, dict] = {}
    corrupt: list[str] = []
    for store in stores:
        try:
            m = read_manifest(store, hour)
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
    store: ObjectStore, problem: dict, expected: dict, stores: dict[str, ObjectStore], healthy: dict[str, set[str]]
) -> str | None:
    if problem["problem"] == "changed since replicated":
        return None  # newer data or an attack on the lake: a person decides (re-replicate, or restore)
    if problem["problem"] == "not in manifest":
        if isinstance(store, LocalStore):
            return None  # never delete lake data on the strength of a manifest
        store.delete([problem["object"]])
        return "manifest"
    entry = expected[problem["object"]]
    for name, other in stores.items():
        if name == store.name or entry["path"] not in healthy.get(name, set()):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "object"
            if download_verified(other, entry, path):
                _, md5, _ = file_digests(path)
                upload_verified(store, path, entry, md5)
                healthy.setdefault(store.name, set()).add(entry["path"])
                return "local lake" if name == "local" else name
    return None
