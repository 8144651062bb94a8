"""The Airflow side of the data-quality gates: the hour's gate task and the warehouse checks.

The checks themselves are plain functions in :mod:`include.quality`; here a failed verdict becomes a
failed task that is never retried (:class:`AirflowFailException`: the same data fails the same way), and
the warehouse-side checks are the common-sql provider's own check operators.
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
    :raises AirflowFailException: a check failed; the message names each failed check with its numbers.
    :raises include.quality_settings.QualitySettingError: a ``TRICLOUD_DQ_*`` setting is invalid.
    """
    from airflow.sdk.exceptions import AirflowFailException

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
        raise AirflowFailException(result.describe() + f"\n(verdict: {path})")
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
    """The provider's SQLTableCheckOperator; an SQLite database is opened by file name."""
