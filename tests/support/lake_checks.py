"""What landed in the lake for an hour: complete or absent, every row once, byte digests."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pyarrow.parquet as pq

from include import lake


def assert_partition_absent_or_complete(root, hour: datetime) -> None:
    part = lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path
    if part.exists():
        assert (part / lake.SUMMARY_FILE).is_file()
        assert (
            pq.read_table(part / "part-00000.parquet").num_rows
            == lake.read_json(part / lake.SUMMARY_FILE)["rows_clean"]
        )


def assert_every_row_accounted_once(root, hour: datetime, rows: int) -> None:
    part = lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path
    summary = lake.read_json(part / lake.SUMMARY_FILE)
    clean = pq.read_table(part / "part-00000.parquet")
    rejects = pq.read_table(lake.partition(root, lake.REJECTS_CUSTOMERS, hour).path / "part-00000.parquet")
    assert summary["rows_in"] == rows
    assert clean.num_rows + rejects.num_rows == rows  # nothing lost
    assert len(set(clean.column("order_id").to_pylist())) == clean.num_rows  # nothing duplicated


def hour_digests(root, hour: datetime) -> dict[str, str]:
    out = {}
    for dataset in lake.HOURLY_OUTPUTS:
        for f in sorted(lake.partition(root, dataset, hour).path.glob("*")):
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
