"""Join one hour's clean orders with the product catalog and aggregate per customer (DuckDB).

Orders whose product is not in the catalog are rejected with reason ``unknown_product_id``,
so that: joined orders + unknown-product rejects = clean orders.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path

from include import lake, paths

log = logging.getLogger(__name__)

AGGREGATE_SQL = """
WITH joined AS (
    SELECT o.*, p.category, p.price, o.quantity * p.price AS amount
    FROM orders o JOIN products p USING (product_id)
),
by_category AS (
    SELECT customer_id, category, sum(amount) AS spend
    FROM joined GROUP BY customer_id, category
),
favourite AS (
    -- highest spend wins; ties go to the alphabetically first category (deterministic)
    SELECT customer_id, arg_min(category, (-spend, category)) AS favourite_category
    FROM by_category GROUP BY customer_id
),
profile AS (
    -- the profile as of the customer's latest order in the hour
    SELECT customer_id,
           arg_max(name, (ts, order_id)) AS name,
           arg_max(email, (ts, order_id)) AS email,
           arg_max(country, (ts, order_id)) AS country
    FROM joined GROUP BY customer_id
)
SELECT j.customer_id, pr.name, pr.email, pr.country,
       count(*)::BIGINT AS order_count,
       sum(j.quantity)::BIGINT AS items,
       round(sum(j.amount), 2) AS spend,
       f.favourite_category,
       min(j.ts) AS first_order_ts,
       max(j.ts) AS last_order_ts,
       $start::TIMESTAMPTZ AS window_start
FROM joined j JOIN profile pr USING (customer_id) JOIN favourite f USING (customer_id)
GROUP BY ALL
ORDER BY j.customer_id
"""


class MissingInputError(FileNotFoundError):
    pass


def _parquet_files(part: lake.HourPartition) -> list[Path]:
    files = sorted(part.path.glob("*.parquet")) if part.path.is_dir() else []
    if not files:
        raise MissingInputError(
            f"no clean {part.dataset} for hour {part.start:%Y-%m-%dT%H:00Z} at {part.path}: "
            f"run the ingest task for that hour first"
        )
    return files


def enrich_hour(lake_root: str | Path, start: str | datetime) -> dict:
    """Build the enriched partition of one hour and return its summary (also written as JSON)."""
    import duckdb  # heavy: imported only when the task runs

    start_dt = lake.parse_hour(start)
    orders_part = lake.partition(lake_root, lake.CLEAN_CUSTOMERS, start_dt)
    products_part = lake.partition(lake_root, lake.CLEAN_PRODUCTS, start_dt)
    out = lake.partition(lake_root, lake.ENRICHED_CUSTOMERS, start_dt)
    rej = lake.partition(lake_root, lake.REJECTS_ENRICHMENT, start_dt)

    con = duckdb.connect()
    staging: list[Path] = []
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 2")
        # Paths never enter SQL text, nor DuckDB's file readers (which glob '*' and '?' even in a
        # parameter): the inputs are read by pyarrow from open files and handed to DuckDB as tables.
        orders_table = paths.read_parquet_files(_parquet_files(orders_part))
        products_table = paths.read_parquet_files(_parquet_files(products_part))
        con.register("orders", orders_table)
        con.register("products", products_table)

        staging_out = lake.staging_dir(lake_root, out)
        staging_rej = lake.staging_dir(lake_root, rej)
        staging += [staging_out, staging_rej]
        staging_out.mkdir()
        staging_rej.mkdir()
        out_file, rej_file = staging_out / "part-00000.parquet", staging_rej / "part-00000.parquet"
        # Write targets are parameters too (DuckDB does not glob them).
        con.execute(
            f"COPY ({AGGREGATE_SQL}) TO $out (FORMAT parquet)", {"start": start_dt, "out": str(out_file)}
        ).fetchall()
        con.execute(
            """COPY (SELECT o.*, 'unknown_product_id' AS reject_reason FROM orders o
                     ANTI JOIN products p USING (product_id) ORDER BY o.order_id)
               TO $out (FORMAT parquet)""",
            {"out": str(rej_file)},
        ).fetchall()
        orders_in = orders_table.num_rows
        # Read back what landed, from the files themselves.
        rejected = paths.parquet_rows([rej_file])
        written = paths.read_parquet_files([out_file])
        con.register("written", written)
        customers, orders_joined, spend = con.execute(
            "SELECT count(*), coalesce(sum(order_count), 0), coalesce(sum(spend), 0) FROM written"
        ).fetchall()[0]
        if orders_joined + rejected != orders_in:
            raise RuntimeError(f"row accounting broken: {orders_joined} joined + {rejected} rejected != {orders_in}")
        lake.publish_dir(staging_rej, rej.path)
        lake.publish_dir(staging_out, out.path)
    finally:
        # As publish() in the Spark jobs: on any error, no open connection and no staging left
        # behind (after a publish the staging dirs are gone already).
        con.close()
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)

    upstream = {}
    for name, part in (("customer_activity", orders_part), ("product_catalog", products_part)):
        summary = part.path / lake.SUMMARY_FILE
        if summary.exists():
            m = lake.read_json(summary)
            upstream[name] = {k: m[k] for k in ("rows_in", "rows_clean", "rows_rejected", "rejected_by_reason")}
    summary = {
        "hour": start_dt.isoformat(),
        "output": str(out.path),
        "rejects": str(rej.path),
        "orders_in": orders_in,
        "orders_joined": orders_joined,
        "orders_rejected_unknown_product": rejected,
        "customers_out": customers,
        "total_spend": round(float(spend), 2),
        "upstream": upstream,
    }
    lake.write_json(out.path / lake.SUMMARY_FILE, summary)
    log.info("Enriched %s: %d customers from %d orders (%d unknown products)", start_dt, customers, orders_in, rejected)
    return summary
