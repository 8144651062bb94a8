"""Data-quality gates of one enriched hour: the checks an on-call engineer would make, as plain functions.

Each check is a pure function from numbers to a :class:`CheckResult` (name, passed, skipped, observed
numbers, threshold, message); :func:`read_facts` gathers those numbers from what the jobs already wrote
for the hour, :func:`check_hour` runs every check, :func:`write_result` keeps the verdict next to the hour
(``_quality/customer_enrichment/date=YYYY-MM-DD/hour=HH.json``, outside the replicated datasets, so it
changes no replica and survives a re-run of any other hour). No Airflow here: the DAG's gate task
(``tricloud.quality``) turns a failed verdict into a failed task.

Inputs (all UTC hours):

- the enriched partition's ``_summary.json`` (include/enrichment.py): ``orders_in``,
  ``orders_rejected_unknown_product``, ``customers_out``, ``total_spend`` and, under ``upstream``, each
  ingest job's ``rows_in`` / ``rejected_by_reason``;
- the clean ``customer_activity`` summaries of the 24 hours before (``rows_in``), for the volume check;
- the key and spend columns of the clean and enriched partitions (NULL keys, negative spend, distinct
  customers): a few columns of one hour, read through the lake's commit (local or ``s3://``).

Thresholds come from :mod:`include.quality_settings` (env ``TRICLOUD_DQ_*``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from include import errors, lake
from include.lake_commit import Lake, ObjectLake, as_lake, read_tables, relpath
from include.quality_settings import Thresholds

#: Where verdicts are kept, beside ``_manifests/`` (not a replicated dataset).
RESULTS_PREFIX = "_quality/customer_enrichment"
#: Key columns that must never be NULL, per dataset (the warehouse's primary key and the join keys).
KEY_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    lake.CLEAN_CUSTOMERS: ("order_id", "customer_id", "product_id"),
    lake.CLEAN_PRODUCTS: ("product_id",),
    lake.ENRICHED_CUSTOMERS: ("customer_id", "window_start"),
}
HISTORY = timedelta(hours=24)


class QualityInputError(errors.MissingInputError):
    """What the checks read is missing (the hour was not enriched): run the hour's earlier tasks first."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    :param name: the check, e.g. ``reject_rate.customer_activity``.
    :param passed: False only when the data broke the rule (a skipped check passes).
    :param skipped: the check could not be judged (e.g. too little history); ``message`` says why.
    :param observed: the numbers looked at (counts are rows, rates are shares in [0, 1]).
    :param threshold: the limits applied, by setting meaning.
    :param message: one line for the task log and the alert.
    """

    name: str
    passed: bool
    observed: Mapping[str, float | int | None]
    threshold: Mapping[str, float | int]
    message: str
    skipped: bool = False


@dataclass(frozen=True)
class HourFacts:
    """Every number the checks need for one hour (see the module docstring for where each comes from)."""

    hour: datetime
    rows_in: Mapping[str, int]
    rejected_by_reason: Mapping[str, Mapping[str, int]]
    history_rows: Mapping[str, int]
    null_keys: Mapping[str, int]
    negative_spend_rows: int
    min_spend: float | None
    total_spend: float
    customers_out: int
    clean_customers: int


@dataclass(frozen=True)
class HourQuality:
    """All checks of one hour; ``passed`` when none failed."""

    hour: datetime
    checks: tuple[CheckResult, ...]
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def describe(self) -> str:
        """One line per failed check (or ``all N checks passed``), for the task's error and log."""
        if self.passed:
            skipped = [c.name for c in self.checks if c.skipped]
            return f"hour {self.hour:%Y-%m-%dT%H:00Z}: all {len(self.checks)} checks passed" + (
                f" ({', '.join(skipped)} skipped)" if skipped else ""
            )
        lines = [f"hour {self.hour:%Y-%m-%dT%H:00Z} failed {len(self.failed)} data-quality check(s):"]
        lines += [f"- {c.name}: {c.message}" for c in self.failed]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready (XCom, the lake copy, the daily report)."""
        return {
            "hour": self.hour.isoformat(),
            "passed": self.passed,
            "failed_checks": [c.name for c in self.failed],
            "checks": [asdict(c) for c in self.checks],
            "thresholds": asdict(self.thresholds),
        }


# -- the checks (pure) ---------------------------------------------------------------------------


def check_row_volume(rows_in: int, history: Mapping[str, int], t: Thresholds) -> CheckResult:
    """Raw customer rows of the hour within [min_ratio, max_ratio] × the median of the trailing 24 hours.

    Skipped (passes) with fewer than ``t.min_history_hours`` earlier hours on record.
    """
    limits = {"min_ratio": t.rows_min_ratio, "max_ratio": t.rows_max_ratio, "min_history_hours": t.min_history_hours}
    if len(history) < t.min_history_hours:
        return CheckResult(
            "row_volume",
            True,
            {"rows_in": rows_in, "history_hours": len(history)},
            limits,
            f"skipped: {len(history)} of the trailing 24 hours on record, {t.min_history_hours} needed",
            skipped=True,
        )
    median = statistics.median(history.values())
    low, high = median * t.rows_min_ratio, median * t.rows_max_ratio
    ok = low <= rows_in <= high
    observed = {"rows_in": rows_in, "history_hours": len(history), "median_rows": median, "low": low, "high": high}
    verdict = "within" if ok else "outside"
    return CheckResult(
        "row_volume",
        ok,
        observed,
        limits,
        f"{rows_in} rows {verdict} [{low:g}, {high:g}] "
        f"({t.rows_min_ratio:g}–{t.rows_max_ratio:g} × median {median:g} of {len(history)} trailing hours)",
    )


def check_reject_rates(dataset: str, rows: int, rejected_by_reason: Mapping[str, int], t: Thresholds) -> CheckResult:
    """Each reject reason's share of the dataset's input rows ≤ ``t.max_reject_rate``.

    Skipped (passes) below ``t.reject_min_rows`` input rows, where one bad row is already a large share.
    """
    name = f"reject_rate.{dataset}"
    limits = {"max_rate": t.max_reject_rate, "min_rows": t.reject_min_rows}
    rates = {reason: (n / rows if rows else 0.0) for reason, n in sorted(rejected_by_reason.items())}
    observed: dict[str, float | int | None] = {"rows_in": rows}
    observed |= {f"{r}_rows": n for r, n in rejected_by_reason.items()}
    observed |= {f"{r}_rate": round(v, 6) for r, v in rates.items()}
    if rows < t.reject_min_rows:
        return CheckResult(
            name, True, observed, limits, f"skipped: {rows} input rows, {t.reject_min_rows} needed", skipped=True
        )
    over = {r: v for r, v in rates.items() if v > t.max_reject_rate}
    if not over:
        worst = max(rates.items(), key=lambda kv: kv[1], default=("none", 0.0))
        return CheckResult(
            name, True, observed, limits, f"highest {worst[0]} {worst[1]:.2%} ≤ {t.max_reject_rate:.2%} of {rows} rows"
        )
    detail = ", ".join(f"{r} {rejected_by_reason[r]}/{rows} = {v:.2%}" for r, v in over.items())
    return CheckResult(name, False, observed, limits, f"{detail} > {t.max_reject_rate:.2%} (a broken producer?)")


def check_null_keys(null_keys: Mapping[str, int]) -> CheckResult:
    """No NULL in any key column (``dataset.column`` → NULL rows)."""
    bad = {k: n for k, n in null_keys.items() if n}
    message = (
        "no NULL in " + ", ".join(sorted(null_keys))
        if not bad
        else ", ".join(f"{k} has {n} NULL rows" for k, n in sorted(bad.items()))
    )
    return CheckResult("null_keys", not bad, dict(null_keys), {"max_null_rows": 0}, message)


def check_spend_non_negative(negative_rows: int, min_spend: float | None, total_spend: float) -> CheckResult:
    """No customer with a negative (or NULL) spend, and the hour's total ≥ 0."""
    ok = negative_rows == 0 and total_spend >= 0
    observed = {"negative_or_null_rows": negative_rows, "min_spend": min_spend, "total_spend": total_spend}
    message = (
        f"min spend {min_spend}, total {total_spend}"
        if ok
        else f"{negative_rows} customers with a negative or NULL spend (min {min_spend}), total {total_spend}"
    )
    return CheckResult("spend_non_negative", ok, observed, {"min_spend": 0}, message)


def check_enriched_within_clean(customers_out: int, clean_customers: int) -> CheckResult:
    """Enriched customers ≤ distinct customers of the clean orders (a join cannot invent customers)."""
    ok = customers_out <= clean_customers
    return CheckResult(
        "enriched_customers_le_clean",
        ok,
        {"enriched_customers": customers_out, "clean_customers": clean_customers},
        {"max_enriched_customers": clean_customers},
        f"{customers_out} enriched {'≤' if ok else '>'} {clean_customers} clean customers",
    )


def check_facts(facts: HourFacts, t: Thresholds) -> HourQuality:
    """Run every check on ``facts``."""
    checks = [check_row_volume(facts.rows_in["customer_activity"], facts.history_rows, t)]
    checks += [
        check_reject_rates(dataset, facts.rows_in[dataset], reasons, t)
        for dataset, reasons in sorted(facts.rejected_by_reason.items())
    ]
    checks += [
        check_null_keys(facts.null_keys),
        check_spend_non_negative(facts.negative_spend_rows, facts.min_spend, facts.total_spend),
        check_enriched_within_clean(facts.customers_out, facts.clean_customers),
    ]
    return HourQuality(facts.hour, tuple(checks), t)


# -- reading the hour (I/O) ----------------------------------------------------------------------


def _summary(the_lake: Lake, dataset: tuple[str, str], hour: datetime) -> dict | None:
    body = (the_lake.read_partition(relpath(dataset, hour), lake.SUMMARY_FILE) or {}).get(lake.SUMMARY_FILE)
    return json.loads(body) if body is not None else None


def _table(the_lake: Lake, dataset: tuple[str, str], hour: datetime):
    table = read_tables(the_lake, relpath(dataset, hour))
    if table is None:
        raise QualityInputError(
            f"no {'/'.join(dataset)} partition for hour {hour:%Y-%m-%dT%H:00Z}: run the hour's ingest and "
            "enrichment first"
        )
    return table


def read_facts(lake_root: str | Path | Lake, hour: str | datetime) -> HourFacts:
    """Gather :class:`HourFacts` for ``hour`` from the lake (a directory, ``s3://…`` or an open lake).

    :raises QualityInputError: the hour's enriched summary or a partition is missing.
    """
    import pyarrow.compute as pc

    the_lake = as_lake(lake_root)
    start = lake.parse_hour(hour)
    enriched = _summary(the_lake, lake.ENRICHED_CUSTOMERS, start)
    if enriched is None:
        raise QualityInputError(
            f"no enriched summary for hour {start:%Y-%m-%dT%H:00Z} "
            f"({relpath(lake.ENRICHED_CUSTOMERS, start)}/{lake.SUMMARY_FILE}): run enrich_customer_data first"
        )
    upstream = enriched.get("upstream", {})
    rows_in = {name: int(m["rows_in"]) for name, m in upstream.items()}
    rejected = {name: dict(m["rejected_by_reason"]) for name, m in upstream.items()}
    rows_in["customer_enrichment"] = int(enriched["orders_in"])
    rejected["customer_enrichment"] = {"unknown_product_id": int(enriched["orders_rejected_unknown_product"])}
    if "customer_activity" not in rows_in:
        raise QualityInputError(f"the enriched summary of {start:%Y-%m-%dT%H:00Z} has no customer_activity upstream")

    history: dict[str, int] = {}
    for n in range(1, int(HISTORY / lake.HOUR) + 1):
        earlier = start - n * lake.HOUR
        if (m := _summary(the_lake, lake.CLEAN_CUSTOMERS, earlier)) is not None:
            history[earlier.isoformat()] = int(m["rows_in"])

    null_keys: dict[str, int] = {}
    tables = {dataset: _table(the_lake, dataset, start) for dataset in KEY_COLUMNS}
    for dataset, columns in KEY_COLUMNS.items():
        for column in columns:
            table = tables[dataset]
            # A key column that vanished from the schema is as bad as one full of NULLs.
            nulls = table.column(column).null_count if column in table.column_names else table.num_rows
            null_keys[f"{dataset[1]}.{column}"] = nulls
    spend = tables[lake.ENRICHED_CUSTOMERS].column("spend")
    negative = int(pc.sum(pc.less(spend, 0)).as_py() or 0) + spend.null_count
    return HourFacts(
        hour=start,
        rows_in=rows_in,
        rejected_by_reason=rejected,
        history_rows=history,
        null_keys=null_keys,
        negative_spend_rows=negative,
        min_spend=pc.min(spend).as_py(),
        total_spend=float(enriched["total_spend"]),
        customers_out=int(enriched["customers_out"]),
        clean_customers=pc.count_distinct(tables[lake.CLEAN_CUSTOMERS].column("customer_id")).as_py(),
    )


def check_hour(lake_root: str | Path | Lake, hour: str | datetime, thresholds: Thresholds | None = None) -> HourQuality:
    """Read the hour's facts and run every check (thresholds default to :meth:`Thresholds.from_env`)."""
    return check_facts(read_facts(lake_root, hour), thresholds or Thresholds.from_env())


# -- keeping the verdict -------------------------------------------------------------------------


def result_relpath(hour: str | datetime) -> str:
    """``_quality/customer_enrichment/date=YYYY-MM-DD/hour=HH.json``, relative to the lake root."""
    h = lake.parse_hour(hour)
    return f"{RESULTS_PREFIX}/date={h:%Y-%m-%d}/hour={h:%H}.json"


def write_result(lake_root: str | Path | Lake, result: HourQuality) -> str:
    """Write ``result`` next to the hour (replacing an earlier verdict of that hour); returns where."""
    the_lake = as_lake(lake_root)
    rel = result_relpath(result.hour)
    if isinstance(the_lake, ObjectLake):
        body = json.dumps(result.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        the_lake.put(the_lake.key(rel), body.encode())
        return f"{the_lake.root}/{rel}"
    path = Path(the_lake.root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lake.write_json(path, result.to_dict())
    return str(path)


def read_day(lake_root: str | Path | Lake, day: date) -> dict[str, dict]:
    """The stored verdicts of ``day``'s hours, by hour ``"HH"`` (hours never checked are absent)."""
    the_lake = as_lake(lake_root)
    found: dict[str, dict] = {}
    for h in range(24):
        rel = result_relpath(datetime(day.year, day.month, day.day, h, tzinfo=UTC))
        if isinstance(the_lake, ObjectLake):
            body = the_lake.get(the_lake.key(rel))
        else:
            path = Path(the_lake.root) / rel
            body = path.read_bytes() if path.is_file() else None
        if body is not None:
            found[f"{h:02d}"] = json.loads(body)
    return found


def day_summary(lake_root: str | Path | Lake, day: date) -> dict:
    """The quality part of the daily report: which of ``day``'s hours were checked, which failed and why.

    :returns: ``hours_checked`` (count), ``hours_passed`` / ``hours_failed`` (``"HH"`` lists) and
        ``failed_checks`` (``"HH"`` → the failed checks' one-line messages).
    """
    verdicts = read_day(lake_root, day)
    failed = sorted(h for h, v in verdicts.items() if not v["passed"])
    return {
        "hours_checked": len(verdicts),
        "hours_passed": sorted(h for h, v in verdicts.items() if v["passed"]),
        "hours_failed": failed,
        "failed_checks": {
            h: [f"{c['name']}: {c['message']}" for c in verdicts[h]["checks"] if not c["passed"]] for h in failed
        },
    }
