"""An independent, row-by-row reimplementation of the documented cleaning and enrichment rules.

Plain Python straight from the raw files (no Spark, no DuckDB), used to check the pipeline's output.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from include import lake

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _text_reason(fields: dict[str, str | None]) -> str | None:
    """bad_encoding / field_too_long, as include.jobs.common.text_rules (limits from include.lake)."""
    if any(v and "\ufffd" in v for v in fields.values()):
        return "bad_encoding"
    if any(v and k in lake.MAX_LENGTH and len(v) > lake.MAX_LENGTH[k] for k, v in fields.items()):
        return "field_too_long"
    return None


def _val(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.strip(" ")  # Spark's trim() removes spaces only
    return None if v in ("", "NA") else v


def _ts(v: str | None) -> datetime | None:
    try:
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S%z") if v else None
    except ValueError:
        return None


def _int(v: str | None) -> int | None:
    return int(v) if v and re.fullmatch(r"[+-]?\d+", v) else None


def _float(v) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def clean_customers(path: Path, start: datetime) -> tuple[list[dict], dict[str, int]]:
    end = start + timedelta(hours=1)
    reasons: dict[str, int] = defaultdict(int)
    valid = []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader)
        for line_no, fields in enumerate(reader):
            if len(fields) != len(header):
                reasons["malformed_row"] += 1
                continue
            raw = dict(zip(header, (fields[i] if fields[i] != "NA" else None for i in range(len(fields))), strict=True))
            r = {k: _val(v) for k, v in raw.items()}
            if r["order_id"]:
                r["order_id"] = r["order_id"].upper()
            ts, qty = _ts(r["ts"]), _int(r["quantity"])
            reason = _text_reason(r) or (
                "missing_order_id"
                if not r["order_id"]
                else "missing_customer_id"
                if not r["customer_id"]
                else "bad_timestamp"
                if ts is None
                else "outside_interval"
                if not start <= ts < end
                else "bad_email"
                if not r["email"] or not EMAIL.match(r["email"])
                else "missing_product_id"
                if not r["product_id"]
                else "bad_quantity"
                if qty is None or qty <= 0
                else None
            )
            if reason:
                reasons[reason] += 1
                continue
            valid.append(
                {
                    **r,
                    "ts": ts,
                    "quantity": qty,
                    "email": r["email"].lower(),
                    "country": r["country"].upper() if r["country"] else None,
                    "product_id": r["product_id"].upper(),
                    "_line": line_no,
                }
            )
    latest: dict[str, dict] = {}
    for r in valid:
        cur = latest.get(r["order_id"])
        if cur is None or (r["ts"], r["_line"]) > (cur["ts"], cur["_line"]):
            latest[r["order_id"]] = r
    reasons["duplicate"] += len(valid) - len(latest)
    return list(latest.values()), dict(reasons)


def clean_products(path: Path) -> tuple[dict[str, dict], dict[str, int]]:
    reasons: dict[str, int] = defaultdict(int)
    valid = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            rec = json.loads(line)
        except ValueError:
            reasons["malformed_row"] += 1
            continue
        pid = _val(None if rec.get("product_id") is None else str(rec["product_id"]))
        cat = _val(rec.get("category"))
        price = _float(rec.get("price"))
        texts = {
            k: _val(None if rec.get(k) is None else str(rec[k]))
            for k in ("product_id", "name", "category", "price", "updated_at")
        }
        reason = _text_reason(texts) or (
            "missing_product_id"
            if not pid
            else "missing_category"
            if not cat
            else "bad_price"
            if price is None or price < 0 or price != price
            else None
        )
        if reason:
            reasons[reason] += 1
            continue
        valid.append(
            {
                "product_id": pid.upper(),
                "category": cat.lower(),
                "price": price,
                "updated_at": _ts(rec.get("updated_at")),
                "_line": line_no,
            }
        )
    latest: dict[str, dict] = {}
    for r in valid:
        cur = latest.get(r["product_id"])
        if cur is None or (r["updated_at"], r["_line"]) > (cur["updated_at"], cur["_line"]):
            latest[r["product_id"]] = r
    reasons["duplicate"] += len(valid) - len(latest)
    return latest, dict(reasons)


def enrich(orders: list[dict], products: dict[str, dict]) -> tuple[dict[str, dict], int]:
    """Per customer: order_count, items, spend, favourite_category. Returns (aggregates, unknown)."""
    out: dict[str, dict] = {}
    by_cat: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    unknown = 0
    for o in orders:
        p = products.get(o["product_id"])
        if p is None:
            unknown += 1
            continue
        amount = o["quantity"] * p["price"]
        agg = out.setdefault(o["customer_id"], {"order_count": 0, "items": 0, "spend": 0.0})
        agg["order_count"] += 1
        agg["items"] += o["quantity"]
        agg["spend"] += amount
        by_cat[o["customer_id"]][p["category"]] += amount
    for cid, agg in out.items():
        cats = by_cat[cid]
        agg["favourite_category"] = min(cats, key=lambda c: (-cats[c], c))
        agg["spend"] = round(agg["spend"], 2)
    return out, unknown
