"""The Airflow side of the warehouse load: the connection's own DB-API hook (common-sql)."""

from __future__ import annotations

from pathlib import Path

from tricloud.connections import require_connection

SUPPORTED = ("sqlite", "postgres", "mysql")


def load_hour(conn_id: str, lake_root: str | Path, hour) -> dict:
    """Upsert one hour of enriched aggregates into ``customer_hourly`` through ``conn_id``'s hook."""
    from include.warehouse import upsert_hour

    conn = require_connection(conn_id, SUPPORTED)
    if conn.conn_type == "sqlite" and conn.host:
        # A fresh checkout has no lake/ yet: SQLite creates the file, not its directory.
        Path(conn.host).parent.mkdir(parents=True, exist_ok=True)
    hook = conn.get_hook()
    db = hook.get_conn()
    try:
        return {
            **upsert_hour(db, hook.placeholder, lake_root, hour, conn.conn_type),
            "conn_id": conn_id,
            "conn_type": conn.conn_type,
        }
    finally:
        db.close()
