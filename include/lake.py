"""The lake's layout, defined once: every writer and reader builds paths here.

Hourly data lives in Hive-style partitions ``<zone>/<dataset>/date=YYYY-MM-DD/hour=HH/``.
Each published partition is a directory that appears atomically (see :func:`publish_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.errors import InputError

HOUR = timedelta(hours=1)

RAW_CUSTOMERS = ("raw", "customer_activity")
RAW_PRODUCTS = ("raw", "product_catalog")
CLEAN_CUSTOMERS = ("clean", "customer_activity")
CLEAN_PRODUCTS = ("clean", "product_catalog")
REJECTS_CUSTOMERS = ("rejects", "customer_activity")
REJECTS_PRODUCTS = ("rejects", "product_catalog")
REJECTS_ENRICHMENT = ("rejects", "customer_enrichment")
ENRICHED_CUSTOMERS = ("enriched", "customer_hourly")

#: Longest accepted value per text field (characters); longer values are rejected as ``field_too_long``.
#: The warehouse's VARCHAR sizes (include/warehouse.py) are at least these.
MAX_LENGTH = {
    "order_id": 64,
    "customer_id": 32,
    "name": 200,
    "email": 320,
    "country": 8,
    "product_id": 64,
    "category": 64,
}

#: Numeric bounds (inclusive) of clean values, so that every derived number stays finite and exact
#: enough in every sink: quantity × price ≤ 1e15 per order, far inside DOUBLE and BIGINT.
#: Beyond them a row is ``bad_quantity`` / ``bad_price``, as NaN, Infinity and 1e999 are.
MAX_QUANTITY = 1_000_000
MAX_PRICE = 1e9

RAW_CUSTOMERS_FILE = "activity.csv"
RAW_PRODUCTS_FILE = "catalog.jsonl"
SUMMARY_FILE = "_summary.json"

#: Every dataset an hourly run publishes (what replication copies).
HOURLY_OUTPUTS = (
    CLEAN_CUSTOMERS,
    REJECTS_CUSTOMERS,
    CLEAN_PRODUCTS,
    REJECTS_PRODUCTS,
    REJECTS_ENRICHMENT,
    ENRICHED_CUSTOMERS,
)


def parse_hour(value: str | datetime) -> datetime:
    """Parse an ISO 8601 timestamp (naive = UTC) and check that it is a whole UTC hour.

    :raises include.errors.InputError: not an ISO timestamp, or not the start of an hour (a ``ValueError``;
        deterministic, so the task fails at once instead of retrying).
    """
    try:
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InputError(f"{value!r} is not an ISO 8601 timestamp (expected e.g. 2026-11-24T10:00:00+00:00)") from err
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if dt.minute or dt.second or dt.microsecond:
        raise InputError(f"{value!r} is not the start of an hour (expected e.g. 2026-11-24T10:00:00+00:00)")
    return dt


@dataclass(frozen=True)
class HourPartition:
    """One hour of one dataset in the lake."""

    root: Path
    zone: str
    dataset: str
    start: datetime

    @property
    def relpath(self) -> str:
        return f"{self.zone}/{self.dataset}/date={self.start:%Y-%m-%d}/hour={self.start:%H}"

    @property
    def path(self) -> Path:
        return self.root / self.relpath


def partition(root: str | Path, dataset: tuple[str, str], start: str | datetime) -> HourPartition:
    zone, name = dataset
    return HourPartition(Path(root), zone, name, parse_hour(start))


def hour_relpath(start: str | datetime) -> str:
    dt = parse_hour(start)
    return f"date={dt:%Y-%m-%d}/hour={dt:%H}"


def staging_dir(root: str | Path, part: HourPartition) -> Path:
    """A fresh directory on the same filesystem as ``part`` (so the final rename is atomic)."""
    path = Path(root) / "_staging" / f"{part.zone}.{part.dataset}.{part.start:%Y%m%d%H}.{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def publish_dir(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` so readers see the old or the new hour, never a mix.

    Spark's bookkeeping files (``_SUCCESS``, ``.crc``) are dropped and part files get stable names,
    so re-running an unchanged hour gives byte-identical files with identical names. (On an object
    store the same is done by :class:`include.lake_commit.ObjectLake`, which has no rename.)
    """
    tidy_staging(staging)
    keep_unchanged_files(staging, final)
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = final.with_name(final.name + f".old-{uuid.uuid4().hex}")
    if final.exists():
        final.rename(trash)
    staging.rename(final)
    if trash.exists():
        shutil.rmtree(trash)


def tidy_staging(staging: Path) -> None:
    """Drop Spark's bookkeeping files (``_SUCCESS``, ``.crc``) and name part files ``part-00000.parquet``, …"""
    for junk in list(staging.glob(".*.crc")) + list(staging.glob("_SUCCESS")):
        junk.unlink()
    parts = sorted(staging.glob("part-*.parquet"))
    for i, part in enumerate(parts):
        part.rename(staging / f".tmp-{i:05d}")
    for i in range(len(parts)):
        (staging / f".tmp-{i:05d}").rename(staging / f"part-{i:05d}.parquet")


def keep_unchanged_files(staging: Path, final: Path) -> None:
    """Where a new part file holds exactly the rows of the published one, keep the published bytes.

    Spark's Parquet writer is not byte-stable (column encodings are listed in hash-set order), so
    without this an unchanged re-run would produce "new" files and replication would re-send them.
    """
    if not final.is_dir():
        return
    import pyarrow.parquet as pq

    for new in staging.glob("part-*.parquet"):
        old = final / new.name
        if not old.is_file():
            continue
        if old.read_bytes() == new.read_bytes():
            continue
        try:
            same = pq.read_table(old).equals(pq.read_table(new))
        except Exception:  # an unreadable old file is simply replaced
            same = False
        if same:
            os.replace(old, new)


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (temp file + rename) with stable key order.

    Raises ``ValueError`` for NaN or infinity (``allow_nan=False``): Python would otherwise write
    ``NaN`` / ``Infinity``, which is not JSON, and readers such as ``jq`` or browsers refuse the file.
    """
    text = json.dumps(payload, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


#: The longest object key S3, GCS and Azure Blob all accept (bytes of UTF-8; Azure counts characters).
MAX_KEY_BYTES = 1024
#: Azure Blob refuses a name of more than 254 path segments.
MAX_KEY_SEGMENTS = 254


def object_name_problem(relpath: str) -> str | None:
    """Why a lake path cannot be stored under the same name in all three clouds, or None if it can.

    Linux allows any byte but ``/`` and NUL in a file name; the clouds do not keep every such name as
    given (rules from the S3 "object key naming", GCS "object naming" and Azure "naming and referencing
    containers, blobs" pages): Azure Blob turns ``\\`` into ``/`` and drops a trailing ``.``; control
    characters break XML listings or are refused; keys stop at 1024 bytes; keys are UTF-8. A file whose
    name one cloud rewrites would be deleted there as "stale" on the next run, so such names are refused.

    :param relpath: the path relative to the lake root, with ``/`` separators.
    """
    if "\\" in relpath:
        return "contains a backslash, which Azure Blob stores as '/'"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in relpath):
        return "contains a control character, which cloud listings cannot carry as given"
    try:
        size = len(relpath.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8 (object keys are UTF-8)"
    if size > MAX_KEY_BYTES:
        return f"is {size} bytes long: object keys stop at {MAX_KEY_BYTES} bytes"
    segments = relpath.split("/")
    if len(segments) > MAX_KEY_SEGMENTS:
        return f"has {len(segments)} path segments: Azure Blob allows {MAX_KEY_SEGMENTS}"
    if any(s.endswith(".") for s in segments):
        return "has a name ending with '.', which Azure Blob drops"
    return None
