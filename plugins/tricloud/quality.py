"""The Airflow side of the data-quality gates: the hour's gate task and the warehouse checks.

The checks themselves are plain functions in :mod:`include.quality`; here a failed verdict becomes a
failed task that is never retried (:class:`include.errors.QualityGateFailedError`, deterministic for the
retry policy: the same data fails the same way) while an I/O error reading the hour is retried, and the
warehouse-side checks are the common-sql provider's own check operators.
"""

from __future__ import annotations

import logging

from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator
from airflow.providers.sqlite.hooks.sqlite import SqliteHook

log = logging.getLogger(__name__)

#: The XCom key under which the gate's verdict is pushed, passed or failed (a failed task returns nothing).
XCOM_KEY = "quality"


def gate_hour(lake_root: str, hour, ti=None) -> dict:
    """Check ``hour`` of the lake at ``lake_root``, keep the verdict in the lake and XCom, fail on a failed check.

    :returns: the verdict (:meth:`include.quality.HourQuality.to_dict`) plus ``path`` (where it was written)
        and ``enriched_customers`` (what the warehouse must hold for the hour).
    :raises include.errors.QualityGateFailedError: a check failed; the message names each failed check with
        its numbers (the retry policy fails it at try 1).
    :raises include.quality_settings.QualitySettingError: a ``TRICLOUD_DQ_*`` setting is invalid (not retried).
    :raises include.quality.QualityInputError: the hour's enriched summary or a partition is missing (not
        retried); any other read error is retried by the policy.
    """
    from include.errors import QualityGateFailedError
    from include.quality import check_facts, read_facts, write_result
    from include.quality_settings import Thresholds
    from tricloud.lake import lake

    thresholds = Thresholds.from_env()  # a bad setting fails before anything is read
    the_lake = lake(lake_root)
    facts = read_facts(the_lake, hour)
    result = check_facts(facts, thresholds)
    path = write_result(the_lake, result)
    for c in result.checks:
        status = "SKIPPED" if c.skipped else ("PASSED" if c.passed else "FAILED")
        log.log(logging.INFO if c.passed else logging.ERROR, "%-7s %s: %s", status, c.name, c.message)
    verdict = {**result.to_dict(), "path": path, "enriched_customers": facts.customers_out}
    if ti is not None:
        ti.xcom_push(key=XCOM_KEY, value=verdict)
    if not result.passed:
        raise QualityGateFailedError(result.describe() + f"\n(verdict: {path})")
    log.info("%s; verdict kept at %s", result.describe(), path)
    return verdict


class LiteralPathSqliteHook(SqliteHook):
    """SqliteHook that opens the database file by name (SqliteHook.get_conn pastes the path unquoted into a
    ``file:`` URI, so ``?``, ``#`` and ``%xx`` in it open another file: see tricloud.warehouse.open_db)."""

    def get_conn(self):
        from tricloud.warehouse import open_db

        return open_db(self.get_connection(self.get_conn_id()))


class _LiteralSqlitePath:
    def get_db_hook(self):
        hook = super().get_db_hook()
        if isinstance(hook, SqliteHook) and not isinstance(hook, LiteralPathSqliteHook):
            return LiteralPathSqliteHook(sqlite_conn_id=hook.get_conn_id())
        return hook


class WarehouseColumnCheckOperator(_LiteralSqlitePath, SQLColumnCheckOperator):
    """The provider's SQLColumnCheckOperator; an SQLite database is opened by file name."""


class WarehouseTableCheckOperator(_LiteralSqlitePath, SQLTableCheckOperator):
    """The provider's SQLTableCheckOperator; an SQLite database is opened by file name, and a check passes on a
    partition without rows.

    The provider takes ``MIN(CASE WHEN <check> THEN 1 ELSE 0 END)`` over the partition's rows, which is NULL
    when the hour has no rows (a legitimate hour: every order rejected, or none placed), and NULL fails the
    check. Here a NULL minimum counts as passed (``COALESCE(…, 1)``): a row-level check has nothing to
    check then, while an aggregate check such as ``COUNT(*) = n`` still yields its one row and is judged.
    """

    sql_check_template = """
    SELECT '{check_name}' AS check_name, COALESCE(MIN({check_name}), 1) AS check_result
    FROM (SELECT CASE WHEN {check_statement} THEN 1 ELSE 0 END AS {check_name}
          FROM {table} {partition_clause}) AS sq
    """
