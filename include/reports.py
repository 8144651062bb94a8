"""A daily rollup of the enriched hours: per hour and for the day, what the hourly runs produced.

Rebuilt from the lake whenever an hour of the day lands (the report DAG is scheduled on the
replicated-hour asset), so late or re-run hours are always reflected. Hours not yet processed are
listed as missing rather than counted as zero.
"""

from __future__ import annotations

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
    }
    path = report_path(lake_root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    lake.write_json(path, report)
    return {**report, "path": str(path)}


def days_of(hours: list[str | datetime]) -> list[date]:
    """The distinct UTC days of some hour starts, in order."""
    return sorted({lake.parse_hour(h).date() for h in hours})
