"""The Airflow side of the warehouse load: the connection's own DB-API hook (common-sql)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tricloud.connections import require_connection

SUPPORTED = ("sqlite", "postgres", "mysql")


def load_hour(conn_id: str, lake_root: str | Path, hour) -> dict:
    """Upsert one hour of enriched aggregates into ``customer_hourly`` through ``conn_id``'s hook.

    ``lake_root`` is a directory or ``s3://bucket/prefix`` (opened with :func:`tricloud.lake.lake`).
    """
    from include.warehouse import upsert_hour
    from tricloud.lake import lake

    conn = require_connection(conn_id, SUPPORTED)
    lake_root = lake(str(lake_root))
    hook = conn.get_hook()
    db = open_db(conn)
    try:
        return {
            **upsert_hour(db, hook.placeholder, lake_root, hour, conn.conn_type),
            "conn_id": conn_id,
            "conn_type": conn.conn_type,
        }
    finally:
        db.close()


def open_db(conn):
    """A DB-API connection for an Airflow connection of a SUPPORTED type (through its hook).

    SQLite is opened by filename: SqliteHook.get_conn() pastes the path unquoted into a "file:" URI,
    so '?', '#' and '%xx' in it are read as URI syntax and the database lands at a truncated path.
    A fresh checkout has no lake/ yet, so the file's directory is created (SQLite creates only the file).
    """
    if conn.conn_type == "sqlite" and conn.host:
        Path(conn.host).parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(conn.host)
    return conn.get_hook().get_conn()
