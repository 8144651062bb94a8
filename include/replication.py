"""Cloud replication of lake hours: incremental, checksum-verified, manifest last; verify, repair, restore.

Pure logic over a tiny object-store interface (:class:`ObjectStore`); the Airflow side wraps the
provider hooks (S3Hook, GCSHook, WasbHook) into it. Nothing here knows which cloud, or emulator, it
talks to.

Object layout in every bucket: the lake's own relative paths, plus one manifest per hour at
``_manifests/<pipeline>/date=YYYY-MM-DD/hour=HH.json`` listing path, size and SHA-256 of every file
of the hour and the row counts. The manifest is written last: an hour without a manifest (or whose
files do not match it) is not complete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from include import lake

log = logging.getLogger(__name__)

PIPELINE = "customer_enrichment"
CHUNK = 1 << 20


class ReplicationError(RuntimeError):
    pass


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    sha256: str | None  # from object metadata; None when the object carries none


class ObjectStore(Protocol):
    name: str
    bucket: str

    def stat(self, key: str) -> RemoteObject | None: ...
    def upload_file(self, path: Path, key: str, sha256: str, md5: bytes) -> None: ...
    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None: ...
    def download_to(self, key: str, writer: BinaryIO) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete(self, keys: list[str]) -> None: ...


# -- hashing -------------------------------------------------------------------------------------
class HashingWriter:
    """A write-only file object that hashes (and optionally forwards) what is written to it."""

    def __init__(self, forward: BinaryIO | None = None) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.forward = forward

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self.forward is not None:
            self.forward.write(data)
        return len(data)

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


def file_digests(path: Path) -> tuple[str, bytes, int]:
    """SHA-256 (hex), MD5 (raw, for Content-MD5 checks by the cloud) and size, in one streaming pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.digest(), size


def md5_b64(md5: bytes) -> str:
    return base64.b64encode(md5).decode()


# -- manifests -----------------------------------------------------------------------------------
def manifest_key(hour: str | datetime, pipeline: str = PIPELINE) -> str:
    h = lake.parse_hour(hour)
    return f"_manifests/{pipeline}/date={h:%Y-%m-%d}/hour={h:%H}.json"


def hour_prefixes(hour: str | datetime) -> list[str]:
    h = lake.parse_hour(hour)
    return [lake.partition("/", ds, h).relpath + "/" for ds in lake.HOURLY_OUTPUTS]


def _digest_cache_path(root: Path, h: datetime) -> Path:
    return root / ".cache" / "digests" / PIPELINE / f"date={h:%Y-%m-%d}" / f"hour={h:%H}.json"


def hour_digests(lake_root: str | Path, hour: str | datetime, workers: int = 4) -> dict[str, dict]:
    """SHA-256, MD5 and size of every file of the hour, hashed once and cached by (size, mtime).

    Like rsync or git's index: a file whose size and mtime are unchanged is not read again, so an
    unchanged re-run costs a few ``stat`` calls, and the three replication tasks share one hashing pass.
    """
    root, h = Path(lake_root), lake.parse_hour(hour)
    files = []
    for ds in lake.HOURLY_OUTPUTS:
        part = lake.partition(root, ds, h)
        if part.path.is_dir():
            files += sorted(p for p in part.path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ReplicationError(f"nothing to replicate for hour {h:%Y-%m-%dT%H:00Z}: no outputs under {lake_root}")
    return _digests(root, files, _digest_cache_path(root, h), workers)


def _digests(root: Path, files: list[Path], cache_file: Path, workers: int) -> dict[str, dict]:
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}

    def digest(path: Path) -> tuple[str, dict]:
        rel = str(path.relative_to(root))
        st = path.stat()
        hit = cache.get(rel)
        if hit and hit["size"] == st.st_size and hit["mtime_ns"] == st.st_mtime_ns:
            return rel, hit
        sha, md5, size = file_digests(path)
        return rel, {"size": size, "mtime_ns": st.st_mtime_ns, "sha256": sha, "md5": md5_b64(md5)}

    digests = dict(_parallel(digest, files, workers))
    if digests != cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        lake.write_json(cache_file, digests)
    return digests


def manifest_from_digests(lake_root: str | Path, hour: str | datetime, digests: dict[str, dict]) -> dict:
    """The hour's manifest. Deterministic: same files, same manifest bytes."""
    import pyarrow.parquet as pq

    h = lake.parse_hour(hour)
    files = [{"path": rel, "size": d["size"], "sha256": d["sha256"]} for rel, d in sorted(digests.items())]
    rows: dict[str, int] = {}
    for rel in sorted(digests):
        zone, dataset = rel.split("/")[:2]
        rows.setdefault(f"{zone}/{dataset}", 0)
        if rel.endswith(".parquet"):
            rows[f"{zone}/{dataset}"] += pq.read_metadata(Path(lake_root) / rel).num_rows
    return {
        "pipeline": PIPELINE,
        "hour": h.isoformat(),
        "files": files,
        "rows": rows,
        "bytes": sum(f["size"] for f in files),
    }


def build_manifest(lake_root: str | Path, hour: str | datetime) -> dict:
    """Describe the hour as it is in the local lake now."""
    return manifest_from_digests(lake_root, hour, hour_digests(lake_root, hour))


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def read_manifest(store: ObjectStore, hour: str | datetime) -> dict | None:
    key = manifest_key(hour)
    if store.stat(key) is None:
        return None
    buf = _Buffer()
    store.download_to(key, buf)
    return json.loads(buf.getvalue())


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


# -- replicate -----------------------------------------------------------------------------------
def _parallel(fn, items: list, workers: int) -> list:
    """Map over a thread pool; on the first failure cancel what has not started and re-raise."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _put_bytes(store: ObjectStore, data: bytes, key: str) -> None:
    store.upload_bytes(data, key, hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).digest())


def replicate_hour(store: ObjectStore, lake_root: str | Path, hour: str | datetime, workers: int = 4) -> dict:
    """Bring one cloud's copy of the hour in line with the local lake; manifest written last.

    Objects whose size and SHA-256 metadata already match are skipped (by content, not by name).
    """
    t0 = time.perf_counter()
    digests = hour_digests(lake_root, hour, workers)
    manifest = manifest_from_digests(lake_root, hour, digests)
    return _sync(store, Path(lake_root), manifest, digests, manifest_key(hour), hour_prefixes(hour), workers, t0)


def replicate_dataset(store: ObjectStore, lake_root: str | Path, relpath: str, workers: int = 4) -> dict:
    """Replicate a whole, non-hourly dataset directory (e.g. ``athletes/mean_age_by_year``) the same way:
    incremental by SHA-256, its manifest ``_manifests/datasets/<relpath>.json`` written last."""
    t0 = time.perf_counter()
    root = Path(lake_root)
    relpath = relpath.strip("/")
    files = sorted(
        p
        for p in (root / relpath).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise ReplicationError(f"nothing to replicate: {root / relpath} has no files")
    digests = _digests(root, files, root / ".cache" / "digests" / "datasets" / f"{relpath}.json", workers)
    manifest = {
        "dataset": relpath,
        "files": [{"path": r, "size": d["size"], "sha256": d["sha256"]} for r, d in sorted(digests.items())],
        "bytes": sum(d["size"] for d in digests.values()),
    }
    return _sync(store, root, manifest, digests, f"_manifests/datasets/{relpath}.json", [relpath + "/"], workers, t0)


def _sync(
    store: ObjectStore,
    root: Path,
    manifest: dict,
    digests: dict,
    key: str,
    prefixes: list[str],
    workers: int,
    t0: float,
) -> dict:
    def sync(entry: dict) -> int:
        remote = store.stat(entry["path"])
        if remote and remote.size == entry["size"] and remote.sha256 == entry["sha256"]:
            return 0
        path = root / entry["path"]
        before = path.stat()
        store.upload_file(path, entry["path"], entry["sha256"], base64.b64decode(digests[entry["path"]]["md5"]))
        if (path.stat().st_size, path.stat().st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise ReplicationError(f"{path} changed while replicating: re-run the task")
        after = store.stat(entry["path"])
        if not after or after.size != entry["size"] or after.sha256 != entry["sha256"]:
            raise ReplicationError(f"{store.name}: {entry['path']} did not land intact ({after})")
        return entry["size"]

    sent = _parallel(sync, manifest["files"], workers)

    body = manifest_bytes(manifest)
    # The lake keeps the manifest too: it is the reference verify_hour checks every copy against.
    local = LocalStore(root)
    if remote_sha256(local, key) != hashlib.sha256(body).hexdigest():
        local.upload_bytes(body, key, "", b"")
    remote = store.stat(key)
    manifest_sent = 0
    if not (remote and remote.sha256 == hashlib.sha256(body).hexdigest()):
        _put_bytes(store, body, key)
        manifest_sent = len(body)

    # Only now, with the new manifest in place, remove objects of the hour it no longer lists.
    wanted = {f["path"] for f in manifest["files"]}
    stale = [k for prefix in prefixes for k in store.list_keys(prefix) if k not in wanted]
    if stale:
        store.delete(stale)
    result = {
        "cloud": store.name,
        "bucket": store.bucket,
        "hour": manifest.get("hour"),
        "dataset": manifest.get("dataset"),
        "objects": len(manifest["files"]),
        "uploaded": sum(1 for s in sent if s),
        "skipped": sum(1 for s in sent if not s),
        "bytes_uploaded": sum(sent) + manifest_sent,
        "stale_deleted": len(stale),
        "manifest": key,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if not result["bytes_uploaded"]:
        log.info("%s: %s already in sync", store.name, manifest.get("hour") or manifest.get("dataset"))
    return result


# -- verify and repair ---------------------------------------------------------------------------
class LocalStore:
    """The local lake seen as one more replica (for verification and repair)."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.bucket = str(self.root)

    def stat(self, key: str) -> RemoteObject | None:
        path = self.root / key
        return RemoteObject(key, path.stat().st_size, None) if path.is_file() else None

    def upload_file(self, path: Path, key: str, sha256: str, md5: bytes) -> None:
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.restore")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def upload_bytes(self, data: bytes, key: str, sha256: str, md5: bytes) -> None:
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    def download_to(self, key: str, writer: BinaryIO) -> None:
        with open(self.root / key, "rb") as f:
            while chunk := f.read(CHUNK):
                writer.write(chunk)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return [str(p.relative_to(self.root)) for p in sorted(base.rglob("*")) if p.is_file()] if base.is_dir() else []

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)


def remote_sha256(store: ObjectStore, key: str) -> str | None:
    """SHA-256 of the object's actual bytes (read back), or None when it is missing or unreadable."""
    if store.stat(key) is None:
        return None
    writer = HashingWriter()
    try:
        store.download_to(key, writer)
    except Exception as err:
        log.warning("%s: reading %s failed: %s", store.name, key, err)
        return None
    return writer.hexdigest()


def verify_hour(
    stores: Iterable[ObjectStore], lake_root: str | Path, hour: str | datetime, repair: bool = True
) -> dict:
    """Re-read the hour in every cloud and in the local lake, comparing SHA-256 of the actual bytes.

    The reference is the manifest the lake recorded when the hour was replicated
    (``<lake>/_manifests/…``), else the manifest most clouds agree on. A missing or corrupted copy — in a
    cloud or in the lake — is repaired from a copy that verifies (the lake first, then the clouds).
    Returns the problems found, the repairs made and what could not be repaired.
    """
    h = lake.parse_hour(hour)
    local = LocalStore(lake_root)
    key = manifest_key(h)
    if local.stat(key):
        reference, source = json.loads((local.root / key).read_bytes()), "lake manifest"
    else:
        reference, source = _majority_manifest(list(stores), h)
    ref_body = manifest_bytes(reference)
    ref_sha = hashlib.sha256(ref_body).hexdigest()
    expected = {f["path"]: f for f in reference["files"]}
    replicas = [local, *stores]

    problems: list[dict] = []
    healthy: dict[str, set[str]] = {}
    for store in replicas:
        ok: set[str] = set()
        for path, entry in expected.items():
            actual = remote_sha256(store, path)
            if actual == entry["sha256"]:
                ok.add(path)
            else:
                problem = "missing" if actual is None else "checksum mismatch"
                problems.append({"cloud": store.name, "object": path, "problem": problem})
        actual = remote_sha256(store, key)
        if actual != ref_sha:
            problem = "manifest missing" if actual is None else "manifest differs"
            problems.append({"cloud": store.name, "object": key, "problem": problem})
        healthy[store.name] = ok

    repaired: list[dict] = []
    unrepaired: list[dict] = []
    if not repair:
        unrepaired = list(problems)
    else:
        by_name = {s.name: s for s in replicas}
        for p in (p for p in problems if p["object"] != key):
            src = _repair_object(by_name[p["cloud"]], expected[p["object"]], by_name, healthy)
            (repaired if src else unrepaired).append({**p, "source": src})
        for p in (p for p in problems if p["object"] == key):
            # A manifest is only rewritten once every object it lists is back.
            if any(u["cloud"] == p["cloud"] for u in unrepaired):
                unrepaired.append({**p, "source": None})
            else:
                _put_bytes(by_name[p["cloud"]], ref_body, key)
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


def _majority_manifest(stores: list[ObjectStore], hour: datetime) -> tuple[dict, str]:
    votes: dict[bytes, list[str]] = {}
    manifests: dict[bytes, dict] = {}
    for store in stores:
        m = read_manifest(store, hour)
        if m is not None:
            body = manifest_bytes(m)
            votes.setdefault(body, []).append(store.name)
            manifests[body] = m
    if not votes:
        raise ReplicationError(f"hour {hour:%Y-%m-%dT%H:00Z} has no manifest in the lake or in any cloud")
    body = max(votes, key=lambda b: len(votes[b]))
    return manifests[body], f"manifest of {', '.join(votes[body])}"


def _repair_object(
    store: ObjectStore, entry: dict, stores: dict[str, ObjectStore], healthy: dict[str, set[str]]
) -> str | None:
    for name, other in stores.items():
        if name == store.name or entry["path"] not in healthy.get(name, set()):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "object"
            if _download_verified(other, entry, path):
                sha, md5, _ = file_digests(path)
                store.upload_file(path, entry["path"], sha, md5)
                healthy.setdefault(store.name, set()).add(entry["path"])
                return "local lake" if name == "local" else name
    return None


def _download_verified(store: ObjectStore, entry: dict, path: Path) -> bool:
    with open(path, "wb") as f:
        writer = HashingWriter(forward=f)
        store.download_to(entry["path"], writer)
    return writer.hexdigest() == entry["sha256"] and writer.size == entry["size"]


# -- restore -------------------------------------------------------------------------------------
def list_hours(store: ObjectStore, start: datetime, end: datetime) -> list[datetime]:
    """Hours in [start, end) for which the store holds a manifest."""
    hours = []
    for key in store.list_keys(f"_manifests/{PIPELINE}/"):
        name = key.rsplit("/", 2)
        try:
            h = datetime.strptime(f"{name[-2]}/{name[-1]}", "date=%Y-%m-%d/hour=%H.json").replace(tzinfo=start.tzinfo)
        except ValueError:
            continue
        if start <= h < end:
            hours.append(h)
    return sorted(hours)


def restore_hour(
    source: ObjectStore, hour: datetime, lake_root: str | Path | None = None, target: ObjectStore | None = None
) -> dict:
    """Rebuild one hour from ``source`` into the local lake (``lake_root``) or another cloud (``target``).

    Every object is verified against the source's manifest before it is published; a cloud target
    gets its manifest last, a local target gets whole partitions swapped in atomically.
    """
    if (lake_root is None) == (target is None):
        raise ValueError("give exactly one of lake_root or target")
    manifest = read_manifest(source, hour)
    if manifest is None:
        raise ReplicationError(f"{source.name} has no manifest for hour {hour:%Y-%m-%dT%H:00Z}")
    t0 = time.perf_counter()
    restored = 0
    with tempfile.TemporaryDirectory(dir=lake_root if lake_root else None) as tmp:
        staging = Path(tmp)

        def fetch(entry: dict) -> int:
            path = staging / entry["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            if not _download_verified(source, entry, path):
                raise ReplicationError(f"{source.name}: {entry['path']} does not match its manifest: not restored")
            return entry["size"]

        restored = sum(_parallel(fetch, manifest["files"], 4))
        if target is not None:

            def put(entry: dict) -> None:
                sha, md5, _ = file_digests(staging / entry["path"])
                target.upload_file(staging / entry["path"], entry["path"], sha, md5)

            _parallel(put, manifest["files"], 4)
            _put_bytes(target, manifest_bytes(manifest), manifest_key(hour))
        else:
            parts = {str(Path(e["path"]).parent) for e in manifest["files"]}
            for rel in sorted(parts):
                final = Path(lake_root) / rel
                stage = lake.staging_dir(lake_root, lake.partition(lake_root, tuple(rel.split("/")[:2]), hour))
                os.replace(staging / rel, stage)
                lake.publish_dir(stage, final)
            LocalStore(lake_root).upload_bytes(manifest_bytes(manifest), manifest_key(hour), "", b"")
    return {
        "hour": manifest["hour"],
        "source": source.name,
        "target": target.name if target else "local lake",
        "objects": len(manifest["files"]),
        "bytes_restored": restored,
        "seconds": round(time.perf_counter() - t0, 3),
    }
