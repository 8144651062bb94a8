"""A user's checkout with a running demo, for the test that the suite never touches it.

:func:`copy_checkout` copies a source tree (this checkout by default) to a new directory with a
user's ``.env`` of its own (free ports, a fresh JWT secret). Run as a script *inside* such a
checkout (``cwd``), this file plays the user, with that checkout's own code and ``.env``:

    python demo_checkout.py up        start the demo's three clouds (the emulators) as `make demo` does
    python demo_checkout.py seed      write an hour into the demo's lake and replicate it to its clouds
    python demo_checkout.py snapshot  print {lake, s3, gcs, azure: {object: sha256}} and the emulator pids
    python demo_checkout.py down      stop the demo's emulators

It only uses APIs that exist in older revisions too (``stack.config.stack_env``, ``stack.emulators``,
``include.replication``), so a checkout of an older commit can be tested the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)  # the hour the suite's replication tests use too
IGNORED = {".git", ".venv", ".stack", "lake", "node_modules", "__pycache__", ".env", ".ruff_cache", "results"}


def copy_checkout(source: Path, dest: Path, ports: list[int]) -> Path:
    """Copy ``source`` to ``dest`` (code only) and write a user's ``.env`` on ``ports`` (9 free ones)."""
    shutil.copytree(source, dest, ignore=lambda _d, names: [n for n in names if n in IGNORED], symlinks=True)
    modules = (source / "stack" / "node_modules").resolve()
    (dest / "stack" / "node_modules").symlink_to(modules)  # Azurite, installed once
    spark, spark_ui, worker_ui, s3, gcs, azure, api, worker_log, trigger_log = ports
    text = (source / ".env.example").read_text()
    for old, new in {
        "127.0.0.1:7077": f"127.0.0.1:{spark}",
        "127.0.0.1:4566": f"127.0.0.1:{s3}",
        "127.0.0.1:4443": f"127.0.0.1:{gcs}",
        "127.0.0.1:10000": f"127.0.0.1:{azure}",
        "SPARK_MASTER_WEBUI_PORT=8090": f"SPARK_MASTER_WEBUI_PORT={spark_ui}",
        "SPARK_WORKER_WEBUI_PORT=8091": f"SPARK_WORKER_WEBUI_PORT={worker_ui}",
        "AIRFLOW__API__PORT=8080": f"AIRFLOW__API__PORT={api}",
        "\nAIRFLOW_JWT_SECRET=\n": f"\nAIRFLOW_JWT_SECRET={secrets.token_hex(32)}\n",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    text += f"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT={worker_log}\nAIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT={trigger_log}\n"
    (dest / ".env").write_text(text)
    return dest


# --- run inside the checkout ----------------------------------------------------------------------
def _env() -> dict[str, str]:
    from stack import config

    env = config.stack_env()
    config.apply(env)
    return env


def up() -> None:
    from stack.emulators import create_buckets, emulators

    env = _env()
    for proc in emulators(env):
        proc.start()
    create_buckets(env)


def down() -> None:
    from stack.emulators import emulators

    for proc in emulators(_env()):
        proc.stop()


def seed() -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include import lake, replication
    from tricloud.replication.stores import stores_from_env

    env = _env()
    root = Path(env["LAKE_ROOT"])
    rng = np.random.default_rng(11)
    for i, ds in enumerate(lake.HOURLY_OUTPUTS):
        part = lake.partition(root, ds, HOUR).path
        part.mkdir(parents=True, exist_ok=True)
        rows = 5000 + i
        table = pa.table({"id": np.arange(rows), "payload": rng.random(rows)})
        pq.write_table(table, part / "part-00000.parquet", compression="none")
    (lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE).write_text('{"demo": true}\n')
    for store in stores_from_env():
        replication.replicate_hour(store, root, HOUR)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot() -> dict:
    """Every object of every bucket/container in the demo's three clouds, and every lake file."""
    from stack.emulators import emulators
    from tricloud.replication.stores import make_store

    env = _env()
    root = Path(env["LAKE_ROOT"])
    out: dict = {
        "lake": {str(p.relative_to(root)): _sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}
    }
    s3 = make_store("s3", "any").client
    out["s3"] = {
        f"{b['Name']}/{o['Key']}": _sha(s3.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read())
        for b in s3.list_buckets()["Buckets"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"])
        for o in page.get("Contents", [])
    }
    gcs = make_store("gcs", "any").hook.get_conn()
    out["gcs"] = {
        f"{b.name}/{blob.name}": _sha(blob.download_as_bytes()) for b in gcs.list_buckets() for blob in b.list_blobs()
    }
    azure = make_store("azure", "any").hook.get_conn()
    out["azure"] = {
        f"{c.name}/{blob.name}": _sha(azure.get_container_client(c.name).download_blob(blob.name).readall())
        for c in azure.list_containers()
        for blob in azure.get_container_client(c.name).list_blobs()
    }
    out["emulator_pids"] = {p.name: p.pid() for p in emulators(env)}
    return out


if __name__ == "__main__":
    cwd = Path.cwd()
    sys.path[:0] = [str(cwd), str(cwd / "plugins")]
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    command = sys.argv[1]
    if command == "snapshot":
        print(json.dumps(snapshot(), sort_keys=True))
    else:
        {"up": up, "down": down, "seed": seed}[command]()
