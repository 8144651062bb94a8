"""The three storage emulators, configured from the same connections the DAGs use.

Each emulator's port is read from its connection (S3 ``endpoint_url``, Azure ``BlobEndpoint``) or
from ``STORAGE_EMULATOR_HOST`` (GCS). A connection pointing anywhere but 127.0.0.1 means a real
cloud: no emulator is started for it.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

from stack.config import ROOT, VENV_BIN
from stack.processes import ManagedProcess

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _conn_extra(env: dict[str, str], name: str) -> dict:
    value = env.get(name, "")
    if not value.startswith("{"):
        return {}
    return json.loads(value).get("extra", {})


def _local_port(url: str | None) -> int | None:
    if not url:
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    return parts.port if parts.hostname in LOCAL_HOSTS else None


def emulators(env: dict[str, str]) -> list[ManagedProcess]:
    state = Path(env["TRICLOUD_STATE_DIR"])
    procs = []
    s3 = _local_port(_conn_extra(env, "AIRFLOW_CONN_AWS_DEFAULT").get("endpoint_url"))
    if s3:
        procs.append(
            ManagedProcess("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3)], state, s3, env)
        )
    gcs = _local_port(env.get("STORAGE_EMULATOR_HOST"))
    if gcs:
        procs.append(
            ManagedProcess(
                "gcs",
                [
                    str(VENV_BIN / "gcp-storage-emulator"),
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(gcs),
                    "--in-memory",
                ],
                state,
                gcs,
                env,
            )
        )
    conn_str = _conn_extra(env, "AIRFLOW_CONN_WASB_DEFAULT").get("connection_string", "")
    match = re.search(r"BlobEndpoint=([^;]+)", conn_str)
    blob = _local_port(match.group(1)) if match else None
    if blob:
        azurite = ROOT / "stack" / "node_modules" / ".bin" / "azurite-blob"
        if not azurite.exists():
            raise RuntimeError("Azurite is not installed: run `make demo` or `npm install --prefix stack`")
        procs.append(
            ManagedProcess(
                "azurite",
                [
                    str(azurite),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(blob),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                    "--silent",
                ],
                state,
                blob,
                env,
            )
        )
    return procs


def create_buckets(env: dict[str, str]) -> None:
    """Create the replica bucket/container in each cloud through the provider hooks (idempotent)."""
    from tricloud.replication.stores import stores_from_env

    for store in stores_from_env(env.get("REPLICA_BUCKET", "tricloud-lake")):
        store.ensure_bucket()
