"""Deterministic generator of raw hourly drops: customer activity (CSV) and the product catalog (JSON lines).

The same hour and seed always give byte-identical files. A small, known share of rows is dirty on
purpose (duplicates, bad emails, missing (empty) ids, ``NA`` quantities, unknown products, unparseable
numbers, malformed lines) so that the cleaning jobs and their rejects are exercised on every run.

    python -m include.generate --lake-root ./lake --hour 2026-11-24T10:00:00Z --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from include import lake

log = logging.getLogger(__name__)

CUSTOMER_COLUMNS = ["order_id", "customer_id", "name", "email", "country", "product_id", "quantity", "ts"]
FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emma",
    "Fatima",
    "Giulia",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Alvarez",
    "Brown",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Rossi",
    "Smith",
    "Tanaka",
    "Weber",
]
COUNTRIES = ["DE", "FR", "US", "GB", "IN", "JP", "BR", "NG", "ES", "IT", "SE", "CA"]
DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.example"]
CATEGORIES = ["books", "electronics", "garden", "grocery", "toys", "sports", "beauty", "home"]

#: Share of rows made dirty, per kind (each applied to distinct rows).
DIRTY_RATES = {
    "exact_duplicate": 0.004,
    "updated_duplicate": 0.004,
    "bad_email": 0.004,
    "missing_customer_id": 0.003,
    "missing_order_id": 0.002,
    "na_quantity": 0.003,
    "unparseable_quantity": 0.003,
    "negative_quantity": 0.002,
    "unknown_product": 0.005,
    "bad_timestamp": 0.002,
    "outside_interval": 0.002,
    "malformed_line": 0.001,
}


@dataclass(frozen=True)
class GeneratedHour:
    hour: datetime
    customer_file: Path
    product_file: Path
    customer_rows: int
    product_rows: int


def _rng(seed: int, hour: datetime, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hour.timestamp()) // 3600, zlib.crc32(stream.encode())])


def _fmt_ts(epoch: np.ndarray) -> list[str]:
    return np.datetime_as_string(epoch.astype("datetime64[s]"), unit="s", timezone="UTC").tolist()


def customer_activity_lines(hour: datetime, rows: int, products: int, seed: int = 42) -> list[list[str]]:
    """Rows (as CSV fields) for one hour, shuffled, dirty rows included. ``rows`` counts data lines."""
    rng = _rng(seed, hour, "customers")
    n_customers = max(50, rows // 8)
    start = int(hour.timestamp())
    cust_idx = rng.integers(0, n_customers, rows)
    first = np.array(FIRST)[cust_idx % len(FIRST)]
    last = np.array(LAST)[(cust_idx // len(FIRST)) % len(LAST)]
    names = np.char.add(np.char.add(first, " "), last)
    emails = [
        f"{f.lower()}.{s.lower().replace(chr(39), '')}{c}@{DOMAINS[c % len(DOMAINS)]}"
        for f, s, c in zip(first.tolist(), last.tolist(), cust_idx.tolist(), strict=True)
    ]
    # Profiles are per customer, so every order of a customer shares them.
    countries = np.array(COUNTRIES)[(cust_idx * 7919) % len(COUNTRIES)]
    # Some emails arrive in mixed case with spaces: normalisation, not rejection.
    product = rng.integers(1, products + 1, rows)
    quantity = rng.integers(1, 6, rows)
    ts = start + rng.integers(0, 3600, rows)

    table = [
        [
            f"O{hour:%Y%m%d%H}-{i:07d}",
            f"C{c:07d}",
            n,
            e if i % 9 else f"  {e.upper()} ",
            co,
            f"P{p:05d}",
            str(q),
            t,
        ]
        for i, (c, n, e, co, p, q, t) in enumerate(
            zip(
                cust_idx.tolist(),
                names.tolist(),
                emails,
                countries.tolist(),
                product.tolist(),
                quantity.tolist(),
                _fmt_ts(ts),
                strict=True,
            )
        )
    ]
    # Dirty rows: pick distinct victims for each kind, deterministically.
    victims = rng.permutation(rows)
    pos = 0
    extra: list[list[str]] = []
    for kind, rate in DIRTY_RATES.items():
        count = int(rows * rate)
        for i in victims[pos : pos + count].tolist():
            row = table[i]
            if kind == "exact_duplicate":
                extra.append(list(row))
            elif kind == "updated_duplicate":
                newer = list(row)
                newer[6] = str(int(row[6]) % 5 + 1)
                # Strictly later so "latest wins" is unambiguous; stays inside the hour.
                newer[7] = _fmt_ts(np.array([min(start + 3599, _epoch(row[7]) + 1)]))[0]
                if newer[7] == row[7]:
                    row[7] = _fmt_ts(np.array([_epoch(row[7]) - 1]))[0]
                extra.append(newer)
            elif kind == "bad_email":
                row[3] = row[3].strip().replace("@", "_at_")
            elif kind == "missing_customer_id":
                row[1] = ""
            elif kind == "missing_order_id":
                row[0] = ""  # empty is missing; "NA" would be a real id (no sentinels on codes)
            elif kind == "na_quantity":
                row[6] = "NA"
            elif kind == "unparseable_quantity":
                row[6] = "three"
            elif kind == "negative_quantity":
                row[6] = "-2"
            elif kind == "unknown_product":
                row[5] = f"P9{int(row[5][1:]):05d}"
            elif kind == "bad_timestamp":
                row[7] = "yesterday"
            elif kind == "outside_interval":
                row[7] = _fmt_ts(np.array([start - 1800]))[0]
            elif kind == "malformed_line":
                row.append("unexpected-extra-field")
        pos += count
    table.extend(extra)
    order = rng.permutation(len(table))
    # Trim to exactly `rows` data lines: duplicates were appended, so drop from the shuffled tail.
    return [table[i] for i in order[:rows]]


def _epoch(ts: str) -> int:
    return int(np.datetime64(ts.rstrip("Z"), "s").astype(np.int64))


def product_catalog_records(hour: datetime, products: int, seed: int = 42) -> list[str]:
    """JSON lines of the product catalog snapshot for one hour, dirty lines included."""
    rng = _rng(seed, hour, "products")
    price = np.round(rng.gamma(2.0, 15.0, products) + 0.5, 2)
    cats = rng.integers(0, len(CATEGORIES), products)
    base_updated = int(hour.timestamp()) - 86400
    records: list[dict] = [
        {
            "product_id": f"P{i + 1:05d}",
            "name": f"{CATEGORIES[c].title()} item {i + 1}",
            "category": CATEGORIES[c],
            "price": float(p),
            "updated_at": _fmt_ts(np.array([base_updated + i]))[0],
        }
        for i, (p, c) in enumerate(zip(price.tolist(), cats.tolist(), strict=True))
    ]
    victims = rng.permutation(products).tolist()
    lines: list[str] = []
    n_dup, n_bad, n_missing, n_malformed = (max(1, int(products * r)) for r in (0.01, 0.005, 0.003, 0.002))
    dup, bad, missing, malformed = (
        set(victims[a:b])
        for a, b in (
            (0, n_dup),
            (n_dup, n_dup + n_bad),
            (n_dup + n_bad, n_dup + n_bad + n_missing),
            (n_dup + n_bad + n_missing, n_dup + n_bad + n_missing + n_malformed),
        )
    )
    for i, rec in enumerate(records):
        if i in bad:
            rec["price"] = "free" if i % 2 else -abs(rec["price"])
        if i in missing:
            rec["product_id"] = None
        line = json.dumps(rec, ensure_ascii=False)
        if i in malformed:
            line = line[: len(line) // 2]  # truncated write
        lines.append(line)
        if i in dup:
            # An older version of the same product: the newer one (already written) must win.
            older = dict(rec, price=round(rec["price"] * 1.1, 2) if isinstance(rec["price"], float) else 1.0)
            older["updated_at"] = _fmt_ts(np.array([base_updated - 3600]))[0]
            lines.append(json.dumps(older, ensure_ascii=False))
    order = rng.permutation(len(lines)).tolist()
    return [lines[i] for i in order]


def generate_hour(
    lake_root: str | Path,
    hour: str | datetime,
    rows: int = 100_000,
    products: int = 2_000,
    seed: int = 42,
) -> GeneratedHour:
    """Write one hour of raw input under ``lake_root`` (overwriting that hour only)."""
    start = lake.parse_hour(hour)
    cust = lake.partition(lake_root, lake.RAW_CUSTOMERS, start).path
    prod = lake.partition(lake_root, lake.RAW_PRODUCTS, start).path
    cust.mkdir(parents=True, exist_ok=True)
    prod.mkdir(parents=True, exist_ok=True)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CUSTOMER_COLUMNS)
    writer.writerows(customer_activity_lines(start, rows, products, seed))
    cust_file = cust / lake.RAW_CUSTOMERS_FILE
    _atomic_write(cust_file, buf.getvalue())

    lines = product_catalog_records(start, products, seed)
    prod_file = prod / lake.RAW_PRODUCTS_FILE
    _atomic_write(prod_file, "\n".join(lines) + "\n")
    log.info("Generated %d customer rows and %d catalog lines for %s", rows, len(lines), start)
    return GeneratedHour(start, cust_file, prod_file, rows, len(lines))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--hour", required=True, help="start of the hour, ISO 8601 (UTC)")
    parser.add_argument("--hours", type=int, default=1, help="number of consecutive hours")
    parser.add_argument("--rows", type=int, default=100_000, help="customer rows per hour")
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    first = lake.parse_hour(args.hour)
    for i in range(args.hours):
        generate_hour(args.lake_root, first + i * lake.HOUR, args.rows, args.products, args.seed)


if __name__ == "__main__":
    main()
