"""
### customer_daily_report — the day so far, rebuilt whenever one of its hours is safe in three clouds

**Scheduled on data, not on time:** runs when `customer_enrichment` emits the asset
`customer_hourly_replicated` (after `verify_replicas` succeeded), and rebuilds the rollup of that
hour's UTC day from the lake's enriched partitions: per hour customers, orders, items and spend; the
day's totals; the five most common favourite categories; and which hours are still missing. Several
hours landing together make one run that rebuilds each of their days once.

**Output:** `$LAKE_ROOT/reports/customer_daily/date=YYYY-MM-DD/report.json` (asset
`customer_daily_report`), replaced atomically.

**Run by hand:** Trigger → **date** (e.g. `2026-11-24`), or
`airflow dags trigger customer_daily_report --conf '{"date": "2026-11-24"}'`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from tricloud.assets import CUSTOMER_DAILY_REPORT, REPLICATED_CUSTOMER_HOURLY


@dag(
    dag_id="customer_daily_report",
    schedule=[REPLICATED_CUSTOMER_HOURLY],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["customers", "report", "data-aware"],
    default_args={"owner": "data-platform", "retries": 2},
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day (UTC)",
            description="Only for manual runs, e.g. 2026-11-24; asset-triggered runs use the hours that landed.",
        )
    },
)
def customer_daily_report():
    @task(task_id="daily_rollup", outlets=[CUSTOMER_DAILY_REPORT])
    def daily_rollup(params=None, triggering_asset_events=None) -> list[dict]:
        """Rebuild the report of every day that the triggering hours belong to."""
        from include.reports import daily_rollup, days_of
        from tricloud import settings

        hours = [e.extra["hour"] for e in (triggering_asset_events or {}).get(REPLICATED_CUSTOMER_HOURLY, [])]
        if params["date"]:
            days = [params["date"]]
        elif hours:
            days = days_of(hours)
        else:
            raise ValueError("nothing to report: trigger with a 'date' param, or let the asset schedule run it")
        reports = [daily_rollup(settings.lake_root(), day) for day in days]
        return [{k: r[k] for k in ("date", "hours_processed", "orders", "spend", "path")} for r in reports]

    daily_rollup()


customer_daily_report()
