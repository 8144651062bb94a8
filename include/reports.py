"""A daily rollup of the enriched hours: per hour and for the day, what the hourly runs produced.

Built from the lake once the day's hours have landed (the report DAG is scheduled on the day's 24
hourly partitions of the replicated-hour asset) and rebuilt when one of them is revised (re-run or
late, see :func:`hour_needs_revision`). Hours not yet processed are listed as missing rather than
counted as zero.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

from include import lake, paths, quality

REPORTS = ("reports", "customer_daily")


def report_path(lake_root: str | Path, day: date) -> Path:
    root = paths.require_local_lake(lake_root, "the daily report")
    return root / REPORTS[0] / REPORTS[1] / f"date={day:%Y-%m-%d}" / "report.json"


def daily_rollup(lake_root: str | Path, day: date | str) -> dict:
    """Aggregate every enriched hour of ``day`` (UTC); write ``reports/customer_daily/date=…/report.json``."""
    import duckdb

    day = date.fromisoformat(day) if isinstance(day, str) else day
    root = paths.require_local_lake(lake_root, "the daily report")
    base = root / lake.ENRICHED_CUSTOMERS[0] / lake.ENRICHED_CUSTOMERS[1] / f"date={day:%Y-%m-%d}"
    files = sorted(base.glob("hour=*/part-*.parquet"))
    # Taken before the data is read: an hour re-published meanwhile then shows as changed, not as seen.
    versions = {d.name.removeprefix("hour="): _hour_version(d) for d in sorted({f.parent for f in files})}
    hours: list[dict] = []
    if files:
        import pyarrow as pa

        # Files are read by pyarrow, not by DuckDB's readers, which expand '*' and '?' in a lake root
        # even when the path is a parameter (see include/paths.py); the hour comes from the partition.
        tables = []
        for f in files:
            t = paths.read_parquet_files([f])
            tables.append(t.append_column("hour", pa.array([f.parent.name.removeprefix("hour=")] * t.num_rows)))
        enriched = pa.concat_tables(tables, promote_options="default")
        con = duckdb.connect()
        con.register("enriched", enriched)
        rows = con.execute(
            """
            SELECT hour,
                   count(*) AS customers, sum(order_count) AS orders, sum(items) AS items,
                   round(sum(spend), 2) AS spend
            FROM enriched
            GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
        top = con.execute(
            """
            SELECT favourite_category, count(*) AS customers
            FROM enriched GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5
            """
        ).fetchall()
        con.close()
        hours = [
            {"hour": h, "customers": c, "orders": int(o), "items": int(i), "spend": float(s)} for h, c, o, i, s in rows
        ]
    else:
        top = []
    done = {h["hour"] for h in hours}
    report = {
        "date": day.isoformat(),
        "hours_processed": len(hours),
        "hours_missing": [f"{h:02d}" for h in range(24) if f"{h:02d}" not in done],
        "orders": sum(h["orders"] for h in hours),
        "spend": round(sum(h["spend"] for h in hours), 2),
        "customer_hours": sum(h["customers"] for h in hours),
        "top_favourite_categories": [{"category": c, "customers": n} for c, n in top],
        "by_hour": hours,
        # The gate's verdicts (include/quality.py): an hour in hours_failed is in the lake but was never
        # published; its numbers above are counted like any other hour's.
        "quality": quality.day_summary(root, day),
        # What each hour was when the report read it, so a later run of that hour can tell it changed.
        "hour_versions": versions,
    }
    path = report_path(lake_root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    lake.write_json(path, report)
    return {**report, "path": str(path)}


def _hour_version(partition_dir: Path) -> str | None:
    """SHA-256 of the hour's ``_summary.json`` (rewritten by every run of the hour), or None."""
    summary = partition_dir / lake.SUMMARY_FILE
    return hashlib.sha256(summary.read_bytes()).hexdigest() if summary.is_file() else None


def hour_needs_revision(lake_root: str | Path, hour: str | datetime) -> bool:
    """Whether the report of ``hour``'s UTC day must be rebuilt because of this hour.

    True when the day's report exists but does not show the hour as it is now in the lake: the hour
    is missing from it (a late hour) or was re-processed since (its ``_summary.json`` differs). False
    when the day has no report yet (its first build is the partition schedule's job) or the report
    already shows this hour (e.g. the hour that completed the day, reported moments later). Also
    False on an object-store lake (``s3://…``), where no daily report is built yet
    (:func:`report_path` refuses it): the hourly run must not fail for a report that cannot exist.
    """
    if "://" in str(lake_root):
        return False
    start = lake.parse_hour(hour)
    path = report_path(lake_root, start.date())
    if not path.is_file():
        return False
    seen = lake.read_json(path).get("hour_versions", {})
    key = f"{start:%H}"
    current = _hour_version(lake.partition(lake_root, lake.ENRICHED_CUSTOMERS, start).path)
    return key not in seen or seen[key] != current


def days_of(hours: list[str | datetime]) -> list[date]:
    """The distinct UTC days of some hour starts, in order."""
    return sorted({lake.parse_hour(h).date() for h in hours})
