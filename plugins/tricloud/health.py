"""Check that a configured connection works, with an error that says what to fix."""

from __future__ import annotations

import logging

from include.errors import ConfigError
from tricloud.connections import env_name, require_connection, require_reachable

log = logging.getLogger(__name__)

#: Every connection the pipelines use, and what kind of check proves it works.
CONNECTIONS = {
    "spark_default": "spark",
    "aws_default": "s3",
    "google_cloud_default": "gcs",
    "wasb_default": "azure",
    "warehouse_default": "sql",
}


def check_connection(conn_id: str, kind: str) -> dict:
    """Connect for real (master port, bucket listing, ``SELECT 1``); raise naming the variable to fix.

    :param conn_id: the connection to check; ``kind``: ``spark``, ``sql``, or a cloud of the replica stores.
    :returns: ``{"conn_id", "conn_type", "ok": True}`` when it works.
    :raises include.errors.ConfigError: unchanged, when the connection or a setting is refused before any
        I/O (e.g. a malformed Azure connection string): it already names what to set.
    :raises ConnectionError: any other failure, naming the connection's ``AIRFLOW_CONN_*`` variable.
    """
    conn = require_connection(conn_id)
    # Logged on purpose: the secrets masker must hide the password and keys (a test checks the log).
    log.info("Checking %s: %s", conn_id, conn.get_uri())
    try:
        if kind == "spark":
            require_reachable(conn.host, conn.port, f"Spark master of {conn_id!r}")
        elif kind == "sql":
            from tricloud.warehouse import open_db

            db = open_db(conn)
            try:
                db.cursor().execute("SELECT 1")
            finally:
                db.close()
        else:
            from tricloud.replication.stores import make_store, replica_bucket

            make_store(kind, replica_bucket(), conn_id).list_keys("_tricloud_check/")
    except ConfigError:
        raise  # already names the connection or setting and what to set: wrapping it would say it twice
    except Exception as err:
        raise ConnectionError(
            f"connection {conn_id!r} does not work ({err}): check {env_name(conn_id)} in .env"
        ) from err
    log.info("%s works", conn_id)
    return {"conn_id": conn_id, "conn_type": conn.conn_type, "ok": True}
