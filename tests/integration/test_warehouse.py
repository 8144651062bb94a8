"""load_warehouse against SQLite and real PostgreSQL and MariaDB servers (Debian packages, throw-away)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake
from stack.databases import MariaDBServer, PostgresServer
from stack.ports import free_port, release
from tricloud.connections import require_connection
from tricloud.warehouse import load_hour

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


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


def _server(cls):
    # Not under pytest's tmp dir: that one is private to root, and both servers drop root.
    d = Path(tempfile.mkdtemp(prefix=f"tricloud-{cls.__name__.lower()}-"))
    port = free_port()  # a demo or a second clone may run its own on any fixed port
    server = cls(d, port)
    server.start()
    yield server.create_database("warehouse")
    server.stop()
    assert server.pid() is None
    shutil.rmtree(d, ignore_errors=True)
    release([port])


@pytest.fixture(scope="module")
def postgres():
    yield from _server(PostgresServer)


@pytest.fixture(scope="module")
def mariadb():
    yield from _server(MariaDBServer)


def count(conn_id: str) -> list[tuple]:
    hook = require_connection(conn_id).get_hook()
    rows = hook.get_records(
        "SELECT window_start, count(*), sum(order_count) FROM customer_hourly GROUP BY window_start"
    )
    # Drivers differ in types only (MySQL returns sum() as Decimal and rows as tuples).
    return [(start, int(n), int(total)) for start, n, total in rows]


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def warehouse(request, tmp_path, monkeypatch) -> str:
    """Connection id ``wh_test`` on an empty warehouse of each supported kind."""
    if request.param == "sqlite":
        # in a directory that does not exist yet, as lake/ in a fresh checkout
        uri = f'{{"conn_type": "sqlite", "host": "{tmp_path / "new-dir" / "wh.sqlite"}"}}'
    else:
        uri = request.getfixturevalue(request.param)
    monkeypatch.setenv("AIRFLOW_CONN_WH_TEST", uri)
    yield "wh_test"
    require_connection("wh_test").get_hook().run(
        "DROP TABLE IF EXISTS customer_hourly"
    )  # the servers are shared by the module's tests


def test_upsert_is_idempotent_per_hour(warehouse, tmp_path):
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


def test_failed_load_changes_nothing(warehouse, tmp_path):
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
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        load_hour("wh_test", root, HOUR)  # duplicate key: the transaction rolls back
    assert count("wh_test") == [(HOUR.isoformat(), 4, 10)]


def test_missing_connection_says_what_to_set():
    with pytest.raises(Exception, match="AIRFLOW_CONN_WH_NOPE"):
        load_hour("wh_nope", "/nonexistent", HOUR)


def write_rows(root, table: dict) -> None:
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, HOUR).path
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    pq.write_table(pa.table(table), part / "part-00000.parquet")


def test_every_clean_value_loads_unchanged(warehouse, tmp_path):
    """Text beyond Latin-1 and each column at its limit (the lake's MAX_LENGTH, BIGINT, finite DOUBLE)."""
    from datetime import timedelta

    root = tmp_path / "lake"
    last = HOUR + timedelta(minutes=59, seconds=59, microseconds=999_999)  # the longest ISO text: 32 characters
    values = {
        "customer_id": ["C" * lake.MAX_LENGTH["customer_id"], "c1", "C1", "é", "e", "NA"],
        "name": ["李小龍🐉" * 50, "Ben\nMiller", 'Ben "Benny" Miller', "Cara\\", "Zoë 👩‍👩‍👧", "NA"],
        "email": [
            "x@" + "e" * (lake.MAX_LENGTH["email"] - 5) + ".io",
            "a@x.io",
            "a@x.io",
            "a@x.io",
            "a@x.io",
            "n@x.io",
        ],
        "country": ["Ö" * lake.MAX_LENGTH["country"], "DE", "DE", "FR", "FR", "NA"],
        "order_count": [2**63 - 1, 1, 1, 1, 1, 1],
        "items": [2**63 - 1, 1, 1, 1, 1, 1],
        "spend": [1e22, 0.01, 12.5, 0.0, 1e15, 37.5],
        "favourite_category": ["ü" * lake.MAX_LENGTH["category"], "home", "home", "books", "books", "home"],
        "first_order_ts": [last] * 6,
        "last_order_ts": [last] * 6,
    }
    write_rows(root, values)
    assert load_hour("wh_test", root, HOUR)["rows_loaded"] == 6
    got = (
        require_connection("wh_test")
        .get_hook()
        .get_records(
            "SELECT customer_id, name, email, country, order_count, items, spend, favourite_category, last_order_ts "
            "FROM customer_hourly"
        )
    )
    expected = {
        (c, n, e, co, oc, i, s, f, last.isoformat())
        for c, n, e, co, oc, i, s, f in zip(
            *(
                values[k]
                for k in (
                    "customer_id",
                    "name",
                    "email",
                    "country",
                    "order_count",
                    "items",
                    "spend",
                    "favourite_category",
                )
            ),
            strict=True,
        )
    }
    # Distinct customer ids that differ only in case or accents stay distinct (a binary collation on MySQL).
    assert {(*r[:4], int(r[4]), int(r[5]), float(r[6]), *r[7:]) for r in got} == expected
