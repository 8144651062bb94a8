"""An independent, row-by-row reimplementation of the documented cleaning and enrichment rules.

Plain Python straight from the raw files (no Spark, no DuckDB), used to check the pipeline's output.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include import lake

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _text_reason(fields: dict[str, str | None]) -> str | None:
    """bad_encoding / field_too_long, as include.jobs.common.text_rules (limits from include.lake)."""
    if any(v and "\ufffd" in v for v in fields.values()):
        return "bad_encoding"
    if any(v and "\x00" in v for v in fields.values()):
        return "nul_character"
    if any(v and k in lake.MAX_LENGTH and len(v) > lake.MAX_LENGTH[k] for k, v in fields.items()):
        return "field_too_long"
    return None


def _val(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.strip(" ")  # Spark's trim() removes spaces only
    return None if v == "" else v  # no sentinel: "NA" is a value (Namibia, an id)


RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d\d)(?::?(\d\d))?)", re.I
)


def _ts(v: str | None) -> datetime | None:
    """RFC 3339 with an offset, as an aware UTC datetime (fraction cut to microseconds)."""
    m = RFC3339.fullmatch(v.strip(" ").upper()) if isinstance(v, str) else None
    if not m:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    offset = timedelta(0) if z else (1 if sign == "+" else -1) * timedelta(hours=int(oh), minutes=int(om or 0))
    if abs(offset) > timedelta(hours=18):
        return None
    try:
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "0")[:6].ljust(6, "0")))
    except ValueError:
        return None
    return (local - offset).replace(tzinfo=UTC)


def _int(v: str | None) -> int | None:
    n = int(v) if v and re.fullmatch(r"[+-]?\d+", v) else None
    return n if n is not None and -(2**31) <= n < 2**31 else None


def _float(v) -> float | None:
    try:
        f = float(v) if v is not None else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None


def clean_customers(path: Path, start: datetime) -> tuple[list[dict], dict[str, int]]:
    end = start + timedelta(hours=1)
    reasons: dict[str, int] = defaultdict(int)
    valid = []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = (record for record in csv.reader(f) if record)  # RFC 4180 records; blank lines are none
        header = next(reader)
        for line_no, fields in enumerate(reader):
            if len(fields) != len(header):
                reasons["malformed_row"] += 1
                continue
            raw = dict(zip(header, fields, strict=True))
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
                if qty is None or not 1 <= qty <= lake.MAX_QUANTITY
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
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln.removeprefix("\ufeff") for ln in re.split(r"\r\n|\r|\n", text)]
    for line_no, line in enumerate(ln for ln in lines if ln.strip()):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict):  # an array or a bare value is not a record
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
            if price is None or not 0 <= price <= lake.MAX_PRICE
            else "bad_timestamp"
            if _ts(rec.get("updated_at")) is None
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
