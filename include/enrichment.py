"""Join one hour's clean orders with the product catalog and aggregate per customer (DuckDB).

Orders whose product is not in the catalog are rejected with reason ``unknown_product_id``,
so that: joined orders + unknown-product rejects = clean orders.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime
from pathlib import Path

from include import errors, lake, paths
from include.lake_commit import Lake, as_lake, read_tables
from include.lake_fs import is_object_store

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


class MissingInputError(errors.MissingInputError):
    """The hour's clean orders or catalog are not in the lake: run the hour's ingest first."""


def _input_table(the_lake: Lake, part: lake.HourPartition):
    table = read_tables(the_lake, part.relpath)
    if table is None:
        raise MissingInputError(
            f"no clean {part.dataset} for hour {part.start:%Y-%m-%dT%H:00Z} at {the_lake.root}/{part.relpath}: "
            f"run the ingest task for that hour first"
        )
    return table


def _summary(the_lake: Lake, part: lake.HourPartition) -> dict | None:
    body = (the_lake.read_partition(part.relpath, lake.SUMMARY_FILE) or {}).get(lake.SUMMARY_FILE)
    return json.loads(body) if body is not None else None


def enrich_hour(lake_root: str | Path | Lake, start: str | datetime) -> dict:
    """Build the enriched partition of one hour and return its summary (also written as JSON).

    ``lake_root`` is a local directory, an ``s3://bucket/prefix`` URI, or an open
    :class:`~include.lake_commit.Lake`: inputs are read from the committed clean partitions, outputs
    published through the lake's commit protocol (a directory rename locally, attempt objects and a
    pointer on an object store), the summary inside the enriched partition, in the same commit.
    """
    import duckdb  # heavy: imported only when the task runs

    the_lake = as_lake(lake_root)
    start_dt = lake.parse_hour(start)
    orders_part = lake.partition(the_lake.root, lake.CLEAN_CUSTOMERS, start_dt)
    products_part = lake.partition(the_lake.root, lake.CLEAN_PRODUCTS, start_dt)
    out = lake.partition(the_lake.root, lake.ENRICHED_CUSTOMERS, start_dt)
    rej = lake.partition(the_lake.root, lake.REJECTS_ENRICHMENT, start_dt)

    con = duckdb.connect()
    staging: list[Path] = []
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 2")
        # Paths never enter SQL text, nor DuckDB's file readers (which glob '*' and '?' even in a
        # parameter, and cannot reach s3:// here without httpfs): the inputs are read by pyarrow, through
        # the lake's commit pointers, and handed to DuckDB as tables.
        orders_table = _input_table(the_lake, orders_part)
        products_table = _input_table(the_lake, products_part)
        con.register("orders", orders_table)
        con.register("products", products_table)

        staging_out = the_lake.staging_dir(out)
        staging_rej = the_lake.staging_dir(rej)
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

        upstream = {}
        for name, part in (("customer_activity", orders_part), ("product_catalog", products_part)):
            if (m := _summary(the_lake, part)) is not None:
                upstream[name] = {k: m[k] for k in ("rows_in", "rows_clean", "rows_rejected", "rejected_by_reason")}
        summary = {
            "hour": start_dt.isoformat(),
            "output": f"{the_lake.root}/{out.relpath}" if is_object_store(the_lake.root) else str(out.path),
            "rejects": f"{the_lake.root}/{rej.relpath}" if is_object_store(the_lake.root) else str(rej.path),
            "orders_in": orders_in,
            "orders_joined": orders_joined,
            "orders_rejected_unknown_product": rejected,
            "customers_out": customers,
            "total_spend": round(float(spend), 2),
            "upstream": upstream,
        }
        # The summary is part of the partition's commit: a reader sees it with the data it describes.
        lake.write_json(staging_out / lake.SUMMARY_FILE, summary)
        the_lake.publish(rej.relpath, staging_rej)
        the_lake.publish(out.relpath, staging_out)
    finally:
        # As publish() in the Spark jobs: on any error, no open connection and no staging left
        # behind (after a publish the staging dirs are gone already).
        con.close()
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)

    log.info("Enriched %s: %d customers from %d orders (%d unknown products)", start_dt, customers, orders_in, rejected)
    return summary
