"""Connection checks that fail fast with a message saying what to set."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from include.errors import ConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection


def env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def require_connection(conn_id: str, conn_types: tuple[str, ...] | None = None) -> Connection:
    """The connection, or an error naming the ``AIRFLOW_CONN_*`` variable to set."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as err:
        raise AirflowNotFoundException(
            f"connection {conn_id!r} is missing: set {env_name(conn_id)} in .env (see .env.example)"
        ) from err
    _mask_encoded_secrets(conn)
    if conn_types and conn.conn_type not in conn_types:
        raise ConfigError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, expected one of {conn_types}: "
            f"fix {env_name(conn_id)} (see .env.example)"
        )
    return conn


def require_reachable(host: str, port: int, what: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after spark-submit's minute of retries, when nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as err:
        raise ConnectionError(f"{what} at {host}:{port} is not reachable ({err}): is the cluster running?") from err


def _mask_encoded_secrets(conn: Connection) -> None:
    """Also mask the URL-encoded forms of the connection's secrets.

    Airflow masks the raw password and sensitive extras (e.g. ``connection_string``), but
    ``Connection.get_uri()`` URL-encodes them, and the encoded Azure account key went to a task log
    unmasked (found by the masking test of check_connections).
    """
    from urllib.parse import quote, quote_plus

    # The same notion of "sensitive" as the masker (incl. [core] sensitive_var_conn_names).
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
    from airflow.sdk.log import mask_secret

    values = [conn.password] if conn.password else []
    values += [str(v) for k, v in (conn.extra_dejson or {}).items() if v and should_hide_value_for_key(k)]
    for value in values:
        for encoded in {quote(value, safe=""), quote_plus(value, safe="")} - {value}:
            mask_secret(encoded)
