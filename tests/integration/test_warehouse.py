"""load_warehouse against SQLite and a real PostgreSQL server (Debian package, throw-away cluster)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake
from tricloud.warehouse import load_hour

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"))


def write_enriched(root, customers: int) -> None:
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "customer_id": [f"C{i:03d}" for i in range(customers)],
                "name": ["Ana"] * customers,
                "email": ["a@x.io"] * customers,
                "country": ["DE"] * customers,
                "order_count": [i + 1 for i in range(customers)],
                "items": [2] * customers,
                "spend": [10.5 * (i + 1) for i in range(customers)],
                "favourite_category": ["books"] * customers,
                "first_order_ts": [HOUR] * customers,
                "last_order_ts": [HOUR] * customers,
            }
        ),
        part / "part-00000.parquet",
    )


@pytest.fixture(scope="module")
def postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: `make test` installs it (apt-get install postgresql)")
    # Not under pytest's tmp dir: that one is private to root and postgres refuses to run as root.
    d = Path(tempfile.mkdtemp(prefix="tricloud-pg-"))
    shutil.chown(d, "postgres")
    run = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run, str(PG_BIN / "initdb"), "-D", str(d / "data"), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    port = 5440
    subprocess.run(
        [
            *run,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(d / "data"),
            "-l",
            str(d / "pg.log"),
            "-w",
            "-o",
            f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*run, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "warehouse"],
        check=True,
        capture_output=True,
    )
    yield f"postgresql://postgres@127.0.0.1:{port}/warehouse"
    subprocess.run([*run, str(PG_BIN / "pg_ctl"), "-D", str(d / "data"), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def count(conn_id: str) -> list[tuple]:
    from tricloud.connections import require_connection

    hook = require_connection(conn_id).get_hook()
    return hook.get_records(
        "SELECT window_start, count(*), sum(order_count) FROM customer_hourly GROUP BY window_start"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upsert_is_idempotent_per_hour(backend, tmp_path, monkeypatch, request):
    if backend == "sqlite":
        # in a directory that does not exist yet, as lake/ in a fresh checkout
        uri = f'{{"conn_type": "sqlite", "host": "{tmp_path / "new-dir" / "wh.sqlite"}"}}'
    else:
        uri = request.getfixturevalue("postgres")
    monkeypatch.setenv("AIRFLOW_CONN_WH_TEST", uri)
    root = tmp_path / "lake"
    write_enriched(root, 5)
    first = load_hour("wh_test", root, HOUR)
    assert (first["rows_loaded"], first["rows_replaced"]) == (5, 0)
    again = load_hour("wh_test", root, HOUR)
    assert (again["rows_loaded"], again["rows_replaced"]) == (5, 5)
    assert count("wh_test") == [(HOUR.isoformat(), 5, 15)]  # not 10 rows: the hour was replaced
    write_enriched(root, 3)  # the hour was re-processed with different results
    load_hour("wh_test", root, HOUR)
    assert count("wh_test") == [(HOUR.isoformat(), 3, 6)]


def test_failed_load_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WH_TEST", f'{{"conn_type": "sqlite", "host": "{tmp_path / "wh.sqlite"}"}}')
    root = tmp_path / "lake"
    write_enriched(root, 4)
    load_hour("wh_test", root, HOUR)
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path
    pq.write_table(
        pa.table(
            {
                "customer_id": ["C1", "C1"],
                "name": [None, None],
                "email": [None, None],
                "country": [None, None],
                "order_count": [1, 1],
                "items": [1, 1],
                "spend": [1.0, 1.0],
                "favourite_category": [None, None],
                "first_order_ts": [HOUR, HOUR],
                "last_order_ts": [HOUR, HOUR],
            }
        ),
        part / "part-00000.parquet",
    )
    with pytest.raises(Exception, match="UNIQUE"):
        load_hour("wh_test", root, HOUR)  # duplicate key: the transaction rolls back
    assert count("wh_test") == [(HOUR.isoformat(), 4, 10)]


def test_missing_connection_says_what_to_set():
    with pytest.raises(Exception, match="AIRFLOW_CONN_WH_NOPE"):
        load_hour("wh_nope", "/nonexistent", HOUR)
