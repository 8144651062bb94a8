"""The guard of a hermetic world: every connection it could use talks to 127.0.0.1, or it refuses to run.

The test suite, the benchmarks and ``make screenshots`` write, "repair" and delete objects: pointed at a
real cloud they would do it to a user's data. :func:`require_loopback` fails before anything starts,
naming the variable to unset.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

#: Connection types whose "host" is a local file, not a server.
FILE_TYPES = {"sqlite", "fs"}
#: Variables that can send a world's traffic elsewhere besides the connections themselves.
EMULATOR_HOST = "STORAGE_EMULATOR_HOST"
SECRETS_BACKEND = "AIRFLOW__SECRETS__BACKEND"


class NotLoopbackError(RuntimeError):
    """A connection (or setting) of a hermetic world points somewhere other than this machine."""


def is_loopback(host: str | None) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(url: str | None) -> str | None:
    if not url:
        return None
    return urllib.parse.urlsplit(url if "://" in url else f"http://{url}").hostname


def _connection(name: str, value: str):
    from airflow.sdk.definitions.connection import Connection

    conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
    if value.lstrip().startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection(conn_id=conn_id, uri=value)


def connection_target(name: str, value: str, env: dict[str, str]) -> str | None:
    """Where the connection in variable ``name`` sends traffic: a host name, or None for a local file.

    The rules follow each provider hook: S3 goes to ``endpoint_url`` or else to AWS; GCS to
    ``STORAGE_EMULATOR_HOST`` or else to Google; Azure Blob to the connection string's ``BlobEndpoint``
    (or the host) or else to ``<account>.blob.core.windows.net``; anything else to its host.
    """
    conn = _connection(name, value)
    kind = (conn.conn_type or "").replace("-", "_")
    extra = conn.extra_dejson
    if kind in FILE_TYPES:
        return None
    if kind == "aws":
        return _host(extra.get("endpoint_url") or extra.get("host")) or "amazonaws.com"
    if kind == "google_cloud_platform":
        return _host(env.get(EMULATOR_HOST)) or "storage.googleapis.com"
    if kind == "wasb":
        match = re.search(r"BlobEndpoint=([^;]+)", extra.get("connection_string", ""))
        return _host(match.group(1)) if match else (conn.host and _host(conn.host)) or "blob.core.windows.net"
    return conn.host or "(no host)"


def problems(env: dict[str, str]) -> list[str]:
    """One sentence per variable of ``env`` that would reach beyond this machine (empty: all loopback)."""
    found = []
    for name in sorted(env):
        value = env[name]
        if name.startswith("AIRFLOW_CONN_") and value:
            try:
                target = connection_target(name, value, env)
            except (ValueError, TypeError) as err:
                found.append(f"{name} cannot be parsed ({err})")
                continue
            if target is not None and not is_loopback(target):
                found.append(f"{name} points at {target}, not 127.0.0.1")
    if env.get(EMULATOR_HOST) and not is_loopback(_host(env[EMULATOR_HOST])):
        found.append(f"{EMULATOR_HOST} points at {_host(env[EMULATOR_HOST])}, not 127.0.0.1")
    if env.get(SECRETS_BACKEND):
        found.append(f"{SECRETS_BACKEND} is set ({env[SECRETS_BACKEND]}): its connections would win over ours")
    return found


def require_loopback(env: dict[str, str], who: str = "the test suite") -> None:
    """Raise :class:`NotLoopbackError` naming each offending variable unless all of ``env`` is local.

    :param env: the environment ``who`` runs with (its own world plus whatever the shell exported).
    :param who: named in the message ("the test suite", "the benchmark").
    """
    found = problems(env)
    if found:
        unset = " ".join(f"-u {name}" for name in sorted({p.split()[0] for p in found}))
        raise NotLoopbackError(
            f"{who} runs only against its own servers on 127.0.0.1 and refuses to start:\n  "
            + "\n  ".join(found)
            + f"\nUnset {'it' if len(found) == 1 else 'them'} for this command, e.g. `env {unset} make test`."
        )
