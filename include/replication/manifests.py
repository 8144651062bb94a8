"""Hour manifests: where they live, what they hold, their version, and validation of untrusted copies.

A manifest lists path, size and SHA-256 of every file of an hour (or of a dataset directory) plus a
``version``: the SHA-256 of that file list (``content_sha256``) and ``published_at``, the time (UTC) the
lake last changed the hour's files (their newest inode change time). A manifest read from a cloud is
untrusted input — anyone who can write to one cloud can write its manifest — so every entry is checked
(:func:`validate_manifest`) before anything is written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include import lake
from include.replication.objects import ManifestError, ObjectStore, read_bytes


@dataclass(frozen=True)
class Pipeline:
    """An hourly pipeline whose outputs are replicated: its ``name`` (in manifest keys and documents)
    and the lake datasets (``(zone, dataset)``) of one hour that its manifest lists."""

    name: str
    outputs: tuple[tuple[str, str], ...]


CUSTOMER_ENRICHMENT = Pipeline("customer_enrichment", lake.HOURLY_OUTPUTS)
#: Pipelines by name (what an operator's ``pipeline`` argument names).
PIPELINES = {p.name: p for p in (CUSTOMER_ENRICHMENT,)}
PIPELINE = CUSTOMER_ENRICHMENT.name


def pipeline_named(name: str | Pipeline) -> Pipeline:
    """The :class:`Pipeline` called ``name``; ``ValueError`` naming the known ones otherwise."""
    if isinstance(name, Pipeline):
        return name
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}: choose one of {sorted(PIPELINES)}") from None


_SHA256 = re.compile(r"[0-9a-f]{64}")
#: How far ahead of this machine's clock a manifest's published_at may be (clock skew between the
#: workers that replicate); anything later is treated as a forged version.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_ENTRY_FIELDS = {"path", "size", "sha256"}


def manifest_key(hour: str | datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT) -> str:
    h = lake.parse_hour(hour)
    return f"_manifests/{pipeline_named(pipeline).name}/date={h:%Y-%m-%d}/hour={h:%H}.json"


def dataset_manifest_key(relpath: str) -> str:
    return f"_manifests/datasets/{relpath}.json"


def hour_prefixes(hour: str | datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT) -> list[str]:
    """The hour's partition directories, as key prefixes ending with ``/``: a manifest lists only these."""
    h = lake.parse_hour(hour)
    return [lake.partition("/", ds, h).relpath + "/" for ds in pipeline_named(pipeline).outputs]


def content_sha256(files: list[dict]) -> str:
    """SHA-256 of a manifest's file list (canonical JSON): equal for equal content, whatever the time."""
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version(files: list[dict], published_ns: int) -> dict:
    published = datetime.fromtimestamp(published_ns / 1e9, UTC).isoformat(timespec="microseconds")
    return {"content_sha256": content_sha256(files), "published_at": published}


def published_at(manifest: dict) -> datetime:
    """When the lake published the content this manifest lists; the epoch for a manifest without a version."""
    v = manifest.get("version")
    return datetime.fromisoformat(v["published_at"]) if v else datetime.fromtimestamp(0, UTC)


def manifest_from_digests(
    lake_root: str | Path,
    hour: str | datetime,
    digests: dict[str, dict],
    pipeline: str | Pipeline = CUSTOMER_ENRICHMENT,
) -> dict:
    """The hour's manifest. Deterministic: same files (same inodes, or same commits), same manifest bytes.

    Row counts come from each digest's ``rows`` (an object lake's commit pointer records them) or else
    from the Parquet footer of the local file.
    """
    import pyarrow.parquet as pq

    h = lake.parse_hour(hour)
    files = [{"path": rel, "size": d["size"], "sha256": d["sha256"]} for rel, d in sorted(digests.items())]
    rows: dict[str, int] = {}
    for rel in sorted(digests):
        zone, dataset = rel.split("/")[:2]
        rows.setdefault(f"{zone}/{dataset}", 0)
        if rel.endswith(".parquet"):
            known = digests[rel].get("rows")
            rows[f"{zone}/{dataset}"] += (
                known if known is not None else pq.read_metadata(Path(lake_root) / rel).num_rows
            )
    return {
        "pipeline": pipeline_named(pipeline).name,
        "hour": h.isoformat(),
        "files": files,
        "rows": rows,
        "bytes": sum(f["size"] for f in files),
        "version": version(files, max(d["ctime_ns"] for d in digests.values())),
    }


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def entry_problem(path: object, prefixes: list[str], nested: bool = False) -> str | None:
    """Why ``path`` may not appear in a manifest with these prefixes (None when it may).

    A path is relative, has no empty, ``.`` or ``..`` segment, lies directly in one of ``prefixes``
    (or anywhere below them when ``nested``), and has a name all three clouds store unchanged.
    """
    if not isinstance(path, str) or not path:
        return "path is not a non-empty string"
    if path.startswith("/"):
        return "absolute path"
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        return "path has an empty, '.' or '..' segment"
    if problem := lake.object_name_problem(path):
        return f"name {problem}"
    prefix = next((p for p in prefixes if path.startswith(p)), None)
    if prefix is None:
        return f"outside the expected prefixes {prefixes}"
    if not nested and "/" in path[len(prefix) :]:
        return "not directly inside its partition"
    return None


def validate_manifest(
    doc: object,
    *,
    cloud: str,
    key: str,
    prefixes: list[str],
    hour: datetime | None = None,
    nested: bool = False,
) -> dict:
    """Check an untrusted manifest entry by entry; return it unchanged or raise :class:`ManifestError`.

    Checked: a JSON object with a ``files`` list; each entry exactly ``path``/``size``/``sha256`` with a
    safe path inside ``prefixes`` (:func:`entry_problem`), ``size`` an integer >= 0 and ``sha256`` 64
    lowercase hex digits; no path twice; ``bytes`` the sum of sizes; the hour (when given); and a
    ``version`` whose ``content_sha256`` matches the file list. The error names the cloud, the key and
    the entry.
    """

    def corrupt(why: str) -> ManifestError:
        return ManifestError(f"{cloud}: manifest {key} is corrupt: {why}")

    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise corrupt("not an object with a 'files' list")
    if hour is not None and doc.get("hour") != hour.isoformat():
        raise corrupt(f"it describes hour {doc.get('hour')!r}, not {hour.isoformat()}")
    seen: set[str] = set()
    for i, entry in enumerate(doc["files"]):
        if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
            raise corrupt(f"entry {i} is not an object with exactly {sorted(_ENTRY_FIELDS)}")
        path, size, sha = entry["path"], entry["size"], entry["sha256"]
        if problem := entry_problem(path, prefixes, nested):
            raise corrupt(f"entry {i} {path!r}: {problem}")
        if type(size) is not int or size < 0:
            raise corrupt(f"entry {i} {path!r}: size {size!r} is not an integer >= 0")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise corrupt(f"entry {i} {path!r}: sha256 {sha!r} is not 64 lowercase hex digits")
        if path in seen:
            raise corrupt(f"entry {i} {path!r} is listed twice")
        seen.add(path)
    if "bytes" in doc and doc["bytes"] != sum(e["size"] for e in doc["files"]):
        raise corrupt(f"'bytes' {doc['bytes']!r} is not the sum of the sizes")
    if "version" in doc:
        v = doc["version"]
        try:
            at = datetime.fromisoformat(v["published_at"])
            ok = v["content_sha256"] == content_sha256(doc["files"])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise corrupt("its version does not match its file list")
        # A version decides which manifest wins: one from the future (or without a time zone, which
        # cannot be compared) would outrank every honest run and block the hour's replication.
        if at.tzinfo is None or at > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise corrupt(f"its version's published_at {v['published_at']!r} is not a past, zone-aware time")
    return doc


def parse_manifest(body: bytes, *, cloud: str, key: str, prefixes: list[str], **kw) -> dict:
    """Parse and validate manifest bytes; any failure is a :class:`ManifestError` naming cloud and key."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"{cloud}: manifest {key} is corrupt: not valid JSON ({err})") from None
    return validate_manifest(doc, cloud=cloud, key=key, prefixes=prefixes, **kw)


def read_manifest(
    store: ObjectStore, hour: str | datetime, pipeline: str | Pipeline = CUSTOMER_ENRICHMENT
) -> dict | None:
    """The store's validated manifest of the hour; None when it has none; :class:`ManifestError` if corrupt."""
    h, key = lake.parse_hour(hour), manifest_key(hour, pipeline)
    body = read_bytes(store, key)
    if body is None:
        return None
    return parse_manifest(body, cloud=store.name, key=key, prefixes=hour_prefixes(h, pipeline), hour=h)
