"""Real-world inputs through the real jobs (``main``, as spark-submit runs them) into every sink of the hour:
the Parquet partitions, the ``_summary.json`` files, the enriched partition (DuckDB) and a SQLite warehouse.

The jobs run as subprocesses on ``local[1]`` (``main`` stops its session); each file of samples is checked
against ``tests/support/reference.py``, the independent plain-Python reimplementation of the rules.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include import lake
from include.enrichment import enrich_hour
from include.warehouse import upsert_hour
from tests.support import reference

ROOT = Path(__file__).resolve().parents[3]
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
H = b"order_id,customer_id,name,email,country,product_id,quantity,ts\r\n"

# One sample per kind of issue 14 (sections 1-5), as producers send them; CRLF as pandas/Excel on Windows.
ACTIVITY = (
    b"\xef\xbb\xbf"
    + H
    + b"\r\n".join(
        [
            b'O1,C1,"Ben\nMiller",ben@example.com,DE,P00001,1,2026-11-24T10:06:00Z',  # quoted line break
            b'O2,C2,"Ben ""Benny"" Miller",b@x.io,DE,P00001,1,2026-11-24T10:07:00+00:00',  # doubled quotes, isoformat()
            b'O3,C3,"Cara\\",c@x.io,DE,P00002,1,2026-11-24T11:07:00+01:00',  # backslash is a character; offset
            b"O4,C4,Dan,d@x.io,US,P00002,2,2026-11-24T05:07:00-05:00",
            b"O5,C5,Eve,e@x.io,FR,P00001,1,2026-11-24T10:08:00.250Z",  # toISOString()
            b"O6,C6,Nami,n@x.io,NA,P00001,3,2026-11-24T10:09:00Z",  # Namibia
            b"O7,C7,Ben\x00Miller,b7@x.io,DE,P00001,1,2026-11-24T10:10:00Z",  # NUL: PostgreSQL refuses it
            b"O8,C8,Inf,i@x.io,DE,P00001,Infinity,2026-11-24T10:11:00Z",
            "O9,C9,李小龍🐉,l@x.io,HK,P00003,1,2026-11-24T10:12:00Z".encode(),  # CJK + emoji
            b"O10,C10,Late,l@x.io,DE,P00001,1,2026-11-24T10:13:00",  # no offset
            b'"O11","C1","Ben Miller","ben@example.com","DE","P00004","1","2026-11-24T10:14:00Z"',
        ]
    )
)  # no final line break
CATALOG = (
    b"\r\n".join(
        [
            b'{"product_id": "P00001", "name": "Lamp", "category": "home", "price": 12.5, "updated_at": "2026-11-23T10:00:00Z"}',
            b'{"product_id": "P00002", "name": "Book", "category": "books", "price": "4.50", "updated_at": "2026-11-23T11:00:00+01:00"}',
            '{"product_id": "P00003", "name": "茶碗 🍵", "category": "home", "price": 30, "updated_at": "2026-11-23T10:00:00.5Z"}'.encode(),
            b'{"product_id": "P00004", "name": "Gem", "category": "home", "price": "Infinity", "updated_at": "2026-11-23T10:00:00Z"}',
            b'{"product_id": "P00005", "name": "Gem", "category": "home", "price": 1e999, "updated_at": "2026-11-23T10:00:00Z"}',
            b'[{"product_id": "P00006", "category": "toys", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}, {"product_id": "P00007", "category": "toys", "price": 1, "updated_at": "2026-11-23T10:00:00Z"}]',
            b'{"product_id": "P00008", "name": "Old", "category": "home", "price": 1, "updated_at": "last week"}',
        ]
    )
    + b"\r\n"
)


def run_job(name: str, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": "--master local[1] --conf spark.ui.enabled=false pyspark-shell"}
    env["PYTHONPATH"] = str(ROOT)
    args = ["--lake-root", str(root), "--start", HOUR.isoformat(), "--end", (HOUR + lake.HOUR).isoformat()]
    return subprocess.run(
        [sys.executable, "-m", f"include.jobs.{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    for dataset, name, data in (
        (lake.RAW_CUSTOMERS, lake.RAW_CUSTOMERS_FILE, ACTIVITY),
        (lake.RAW_PRODUCTS, lake.RAW_PRODUCTS_FILE, CATALOG),
    ):
        part = lake.partition(root, dataset, HOUR).path
        part.mkdir(parents=True)
        (part / name).write_bytes(data)
    for job in ("ingest_customers", "ingest_products"):
        done = run_job(job, root)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


def rows(root: Path, dataset) -> list[dict]:
    return pq.read_table(lake.partition(root, dataset, HOUR).path / "part-00000.parquet").to_pylist()


def test_clean_customers_are_what_the_producer_meant(hour):
    clean = {r["order_id"]: r for r in rows(hour, lake.CLEAN_CUSTOMERS)}
    assert sorted(clean) == ["O1", "O11", "O2", "O3", "O4", "O5", "O6", "O9"]
    assert clean["O1"]["name"] == "Ben\nMiller"
    assert clean["O2"]["name"] == 'Ben "Benny" Miller'
    assert clean["O3"]["name"] == "Cara\\"
    assert clean["O6"]["country"] == "NA"
    assert clean["O9"]["name"] == "李小龍🐉"
    # Spark writes UTC instants without a zone annotation: naive values read back are UTC.
    utc = {
        k: r["ts"] if r["ts"].tzinfo is None else r["ts"].astimezone(UTC).replace(tzinfo=None) for k, r in clean.items()
    }
    assert utc["O3"] == utc["O4"] == datetime(2026, 11, 24, 10, 7)
    assert utc["O5"] == datetime(2026, 11, 24, 10, 8, 0, 250_000)
    rejects = {r["order_id"]: r["reject_reason"] for r in rows(hour, lake.REJECTS_CUSTOMERS)}
    assert rejects == {"O7": "nul_character", "O8": "bad_quantity", "O10": "bad_timestamp"}


def test_customer_summary_counts_records_and_agrees_with_the_reference(hour):
    summary = strict_json(lake.partition(hour, lake.CLEAN_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
    assert (summary["rows_in"], summary["rows_clean"], summary["rows_rejected"]) == (11, 8, 3)
    expected, reasons = reference.clean_customers(
        lake.partition(hour, lake.RAW_CUSTOMERS, HOUR).path / "activity.csv", HOUR
    )
    assert sorted(r["order_id"] for r in expected) == sorted(r["order_id"] for r in rows(hour, lake.CLEAN_CUSTOMERS))
    assert {k: v for k, v in reasons.items() if v} == summary["rejected_by_reason"]


def test_catalog_is_finite_and_one_line_is_one_record(hour):
    clean = {r["product_id"]: r for r in rows(hour, lake.CLEAN_PRODUCTS)}
    assert sorted(clean) == ["P00001", "P00002", "P00003"]
    assert clean["P00003"]["name"] == "茶碗 🍵"
    summary = strict_json(lake.partition(hour, lake.CLEAN_PRODUCTS, HOUR).path / lake.SUMMARY_FILE)
    assert (summary["rows_in"], summary["rows_clean"]) == (7, 3)
    assert summary["rejected_by_reason"] == {"bad_price": 2, "malformed_row": 1, "bad_timestamp": 1}
    expected, reasons = reference.clean_products(lake.partition(hour, lake.RAW_PRODUCTS, HOUR).path / "catalog.jsonl")
    assert sorted(expected) == sorted(clean)
    assert {k: v for k, v in reasons.items() if v} == summary["rejected_by_reason"]


def test_enriched_and_warehouse_keep_namibia_and_unicode(hour, tmp_path):
    summary = enrich_hour(hour, HOUR)
    assert summary["total_spend"] == 12.5 + 12.5 + 4.5 + 9.0 + 12.5 + 37.5 + 30.0
    strict_json(Path(summary["output"]) / lake.SUMMARY_FILE)
    enriched = {r["customer_id"]: r for r in pq.read_table(summary["output"]).to_pylist()}
    assert enriched["C6"]["country"] == "NA"
    db = sqlite3.connect(tmp_path / "wh.sqlite")
    upsert_hour(db, "?", hour, HOUR)
    got = dict(db.execute("SELECT customer_id, country FROM customer_hourly").fetchall())
    assert got["C6"] == "NA"
    assert db.execute("SELECT name FROM customer_hourly WHERE customer_id = 'C9'").fetchone() == ("李小龍🐉",)


def test_zero_byte_catalog_fails_the_hour_and_keeps_the_published_one(hour):
    part = lake.partition(hour, lake.CLEAN_PRODUCTS, HOUR).path
    before = {f.name: f.read_bytes() for f in part.iterdir()}
    (lake.partition(hour, lake.RAW_PRODUCTS, HOUR).path / lake.RAW_PRODUCTS_FILE).write_bytes(b"")
    done = run_job("ingest_products", hour)
    assert done.returncode != 0
    assert "holds no record (zero bytes or blank lines only): a truncated upload?" in done.stderr
    assert {f.name: f.read_bytes() for f in part.iterdir()} == before


def test_a_catalog_without_one_valid_product_fails_the_hour_too(hour):
    part = lake.partition(hour, lake.CLEAN_PRODUCTS, HOUR).path
    before = {f.name: f.read_bytes() for f in part.iterdir()}
    (lake.partition(hour, lake.RAW_PRODUCTS, HOUR).path / lake.RAW_PRODUCTS_FILE).write_bytes(
        b'[{"product_id": "P00001"}]\n{"product_id": "P00002", "category": "home", "price": "NaN"}\n'
    )
    done = run_job("ingest_products", hour)
    assert done.returncode != 0
    assert "holds no valid product (2 lines, rejected by reason: {" in done.stderr
    assert {f.name: f.read_bytes() for f in part.iterdir()} == before


def test_a_generated_hour_agrees_with_the_reference(tmp_path):
    """The generator's dirty rows under the new rules (empty ids, NA quantities, …), job vs plain Python."""
    from include import generate

    gen = generate.generate_hour(tmp_path, HOUR, rows=2000, products=200)
    for job in ("ingest_customers", "ingest_products"):
        done = run_job(job, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    orders, order_reasons = reference.clean_customers(gen.customer_file, HOUR)
    products, product_reasons = reference.clean_products(gen.product_file)
    customers = strict_json(lake.partition(tmp_path, lake.CLEAN_CUSTOMERS, HOUR).path / lake.SUMMARY_FILE)
    catalog = strict_json(lake.partition(tmp_path, lake.CLEAN_PRODUCTS, HOUR).path / lake.SUMMARY_FILE)
    assert (customers["rows_in"], customers["rows_clean"]) == (2000, len(orders))
    assert customers["rejected_by_reason"] == {k: v for k, v in order_reasons.items() if v}
    assert "missing_order_id" in customers["rejected_by_reason"]
    assert catalog["rows_clean"] == len(products)
    assert catalog["rejected_by_reason"] == {k: v for k, v in product_reasons.items() if v}
