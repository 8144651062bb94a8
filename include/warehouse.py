"""Load one hour's enriched aggregates into a SQL table, idempotently (replace the hour in one transaction).

Works on any DB-API 2 connection (SQLite, PostgreSQL, MySQL/MariaDB); the caller passes the driver's
placeholder and the connection type. Portable types only, so the same DDL runs everywhere; on MySQL the
table is declared ``utf8mb4`` with a binary collation, since the server default may be ``latin1``
(MariaDB's is: CJK or emoji names failed the hour) and a ``_ci`` collation would make the primary key
treat ``c1``/``C1`` or ``e``/``é`` as one customer.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from include import lake
from include.errors import MissingInputError
from include.lake_commit import Lake, as_lake, read_tables

TABLE = "customer_hourly"
COLUMNS = [
    "window_start",
    "customer_id",
    "name",
    "email",
    "country",
    "order_count",
    "items",
    "spend",
    "favourite_category",
    "first_order_ts",
    "last_order_ts",
]
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    window_start VARCHAR(32) NOT NULL,
    customer_id VARCHAR(32) NOT NULL,
    name VARCHAR(200),
    email VARCHAR(320),
    country VARCHAR(8),
    order_count BIGINT NOT NULL,
    items BIGINT NOT NULL,
    spend DOUBLE PRECISION NOT NULL,
    favourite_category VARCHAR(64),
    first_order_ts VARCHAR(32),
    last_order_ts VARCHAR(32),
    PRIMARY KEY (window_start, customer_id)
)"""
#: Table options per connection type (Airflow's ``conn_type``), appended to ``DDL``.
TABLE_OPTIONS = {"mysql": " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"}


def ddl(conn_type: str | None = None) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement for a connection type (``sqlite``, ``postgres``, ``mysql``)."""
    return DDL + TABLE_OPTIONS.get(conn_type or "", "")


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def read_enriched(lake_root: str | Path | Lake, hour: datetime) -> list[tuple]:
    """The hour's enriched rows, from the lake's committed partition (a directory or ``s3://…``).

    :raises MissingInputError: the hour has no committed enriched partition (deterministic: the retry
        policy fails the task at once, as the quality gate does for the same case); names the partition.
    """
    the_lake = as_lake(lake_root)
    part = lake.partition(the_lake.root, lake.ENRICHED_CUSTOMERS, hour)
    table = read_tables(the_lake, part.relpath)
    if table is None:
        raise MissingInputError(
            f"no enriched partition for hour {hour:%Y-%m-%dT%H:00Z} at {the_lake.root}/{part.relpath}: "
            "run the hour's enrich_customer_data (or the whole customer_enrichment run) first"
        )
    rows = []
    key = hour.isoformat()
    for r in table.to_pylist():
        rows.append(
            (
                key,
                r["customer_id"],
                r["name"],
                r["email"],
                r["country"],
                r["order_count"],
                r["items"],
                r["spend"],
                r["favourite_category"],
                _iso(r["first_order_ts"]),
                _iso(r["last_order_ts"]),
            )
        )
    return rows


def upsert_hour(
    conn, placeholder: str, lake_root: str | Path | Lake, hour: str | datetime, conn_type: str | None = None
) -> dict:
    """Replace the hour's rows in one transaction: a re-run never duplicates, a failure changes nothing.

    ``conn_type`` (Airflow's connection type) picks the table options of :func:`ddl`.
    """
    h = lake.parse_hour(hour)
    rows = read_enriched(lake_root, h)
    marks = ", ".join([placeholder] * len(COLUMNS))
    cur = conn.cursor()
    try:
        cur.execute(ddl(conn_type))
        cur.execute(f"DELETE FROM {TABLE} WHERE window_start = {placeholder}", (h.isoformat(),))
        replaced = cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0
        cur.executemany(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        cur.close()
    return {"table": TABLE, "hour": h.isoformat(), "rows_loaded": len(rows), "rows_replaced": replaced}
