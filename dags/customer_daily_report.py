"""
### customer_daily_report — one report per UTC day, once the day's hours are in three clouds

**Scheduled on partitions, not on every hour:** `customer_enrichment` emits the asset
`customer_hourly_replicated` with the hour as partition key (`2026-11-24T10:00:00`). This DAG waits
for all 24 hourly partitions of a day (`DayWindow`, `WaitForAll`) and then runs once, with the day as
its partition key (`2026-11-24`). With `TRICLOUD_REPORT_MAX_MISSING_HOURS=N` (default 0) it runs as
soon as at most N hours are missing (`MinimumCount(-N)`); the report lists them.

**Rebuilt when an hour changes:** when an hour of an already reported day is replicated again (a
re-run, or a late hour), `customer_enrichment.revise_daily_report` emits `customer_hourly_revised`
for that hour, and this DAG rebuilds that day's report.

The report: per hour customers, orders, items and spend; the day's totals; the five most common
favourite categories; which hours are missing.

**Output:** `$LAKE_ROOT/reports/customer_daily/date=YYYY-MM-DD/report.json` (asset
`customer_daily_report`), replaced atomically.

**When it fails:** deterministic errors fail at once, transient ones retry with backoff (the hourly
DAGs' `RETRY_POLICY`); the final failure is e-mailed / posted like an hour's (`tricloud.alerts`).

**Run by hand:** Trigger → **date** (e.g. `2026-11-24`), or
`airflow dags trigger customer_daily_report --conf '{"date": "2026-11-24"}'`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from tricloud import settings
from tricloud.alerts import ON_FAILURE_BY_RUN
from tricloud.assets import CUSTOMER_DAILY_REPORT, daily_report_schedule
from tricloud.task_defaults import pipeline_default_args


@dag(
    dag_id="customer_daily_report",
    schedule=daily_report_schedule(settings.report_max_missing_hours()),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["customers", "report", "data-aware"],
    default_args=pipeline_default_args(on_failure_callback=ON_FAILURE_BY_RUN),  # no hourly interval: name the run
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day (UTC)",
            description="Only for manual runs, e.g. 2026-11-24; scheduled runs report their partition's day.",
        )
    },
)
def customer_daily_report():
    @task(task_id="daily_rollup", outlets=[CUSTOMER_DAILY_REPORT])
    def daily_rollup(params=None, dag_run=None) -> dict:
        """Build the report of the run's day: the `date` param, else the run's partition key."""
        from include.errors import ConfigError
        from include.reports import daily_rollup

        day = params["date"] or dag_run.partition_key
        if not day:
            raise ConfigError("nothing to report: trigger with a 'date' param, or let the partition schedule run it")
        report = daily_rollup(settings.lake_root(), day)
        return {k: report[k] for k in ("date", "hours_processed", "hours_missing", "orders", "spend", "path")}

    daily_rollup()


customer_daily_report()
