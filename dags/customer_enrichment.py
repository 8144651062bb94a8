"""
### customer_enrichment — hourly clean, join and aggregate of customer activity

Every hour `[start, end)` (UTC) this DAG:

0. **claim_hour** (setup) — takes the hour's lease in the lake, so two runs of one hour (scheduled +
   manual, a clear, a backfill) never interleave: a second run *waits* here, holding no worker slot,
   logging which run holds the hour; every writing task below checks that its run still holds it.
1. **start_cluster** — makes sure the Spark standalone cluster of connection `spark_default` is up
   (starts it from the installed pyspark if nothing answers; reuses a running one).
2. **ingest_customer_data** ∥ **ingest_product_data** — Spark jobs that *clean* the hour's raw drops
   (`raw/customer_activity/…/activity.csv`, `raw/product_catalog/…/catalog.jsonl`): typed schema,
   normalised values, duplicates removed (latest wins). Every rejected row lands in `rejects/…` with a
   `reject_reason`; cleaned + rejected = input.
3. **enrich_customer_data** — *joins* clean orders with the catalog and *aggregates* per customer
   (orders, items, spend, favourite category) into `enriched/customer_hourly/…` plus `_summary.json`.
4. **check_quality** — the hour's data-quality gate (include/quality.py): volume against the trailing
   24 hours, reject rate per reason, NULL keys, negative spend, enriched ≤ clean customers. A failed
   check fails this task at once (no retry: the same data fails the same way; a read error is retried),
   naming the check and its numbers, and nothing of the hour goes to the clouds or the warehouse. The
   verdict is in the task log, XCom (key `quality`) and `_quality/customer_enrichment/date=…/hour=….json`;
   thresholds are `TRICLOUD_DQ_*` settings.
5. **replicate_to_s3** ∥ **replicate_to_gcs** ∥ **replicate_to_azure** — copy the hour's clean,
   rejects and enriched partitions to Amazon S3, Google Cloud Storage and Azure Blob through the
   provider hooks (connections `aws_default`, `google_cloud_default`, `wasb_default`, bucket
   `$REPLICA_BUCKET`). Each object carries its SHA-256; objects already in place are skipped; the
   hour's manifest (`_manifests/customer_enrichment/date=…/hour=….json`) is written last.
6. **verify_replicas** — re-reads every cloud's objects and compares checksums; repairs a missing or
   corrupted copy from the lake or a healthy cloud, and fails naming what differed.
   **revise_daily_report** — when the hour's day already has a daily report that does not show the
   hour as it is now (a re-run or late hour), emits `customer_hourly_revised` so that report is
   rebuilt; skipped otherwise (the day's first report waits for its 24 partitions).
7. **load_warehouse** — upserts the hour's aggregates into table `customer_hourly` of connection
   `warehouse_default` (SQLite file locally, PostgreSQL in compose); a re-run replaces the hour.
8. **check_warehouse_columns** ∥ **check_warehouse_table** — the common-sql provider's check operators on
   the hour's rows of `customer_hourly` (no NULL or duplicate customer, spend ≥ 0, as many rows as the
   lake's enriched customers); never retried.
9. **stop_cluster** (teardown) — stops the Spark cluster only if this run started it.
10. **release_hour** (teardown of claim_hour) — frees the hour, whatever happened. A crashed run's hour
   is free once that run is failed (or after an hour without renewal).

Partitions are `date=YYYY-MM-DD/hour=HH` under `$LAKE_ROOT`; each appears atomically, and re-running
an hour replaces it with identical content.

**Outputs as partitioned Assets:** `customer_hourly_enriched` (by `check_quality`, once the hour passed the gate) and
`customer_hourly_replicated` (after `verify_replicas`), each event carrying `{"hour": …}` and the
hour as partition key (`2026-11-24T10:00:00`); `customer_daily_report` runs once a day's 24
partitions of the latter are in.

**Re-run or backfill an hour:**
- UI: clear the run, or *Trigger* and fill **hour** (e.g. `2026-11-24T10:00:00+00:00`; the form refuses
  anything but a whole UTC hour);
- CLI: `airflow dags trigger customer_enrichment --logical-date 2026-11-24T11:00:00+00:00` (processes
  10:00–11:00: a manual run's interval ends at its logical date), or
  `airflow dags trigger customer_enrichment --conf '{"hour": "2026-11-24T10:00:00+00:00"}'`;
- backfill: `airflow backfill create --dag-id customer_enrichment --from-date 2026-11-23T00:00:00+00:00
  --to-date 2026-11-23T23:00:00+00:00` (a backfilled run's logical date is its hour's start; one run per hour;
  an hour without input fails with "no input for hour …" and the others go on).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, TaskGroup, dag, task

from tricloud import macros, settings
from tricloud.alerts import hour_deadline
from tricloud.assets import ENRICHED_CUSTOMER_HOURLY, REPLICATED_CUSTOMER_HOURLY, REVISED_CUSTOMER_HOURLY
from tricloud.hour_lease import LEASE_ARGS, ClaimHourSensor, ReleaseHourOperator, fence, keep_alive
from tricloud.hours import HOUR_PARAM_PATTERN
from tricloud.operators import (
    EnrichHourOperator,
    LoadWarehouseOperator,
    ReplicateHourOperator,
    SparkJobOperator,
    StartClusterOperator,
    StopClusterOperator,
    VerifyReplicasOperator,
)
from tricloud.quality import XCOM_KEY, WarehouseColumnCheckOperator, WarehouseTableCheckOperator
from tricloud.spark_conf import SHORT_JOB_CONF
from tricloud.task_defaults import pipeline_default_args

WAREHOUSE_TABLE = "customer_hourly"  # include.warehouse.TABLE (not imported: parse time stays light)
#: The enriched customers the gate counted in the lake: what the warehouse must hold for the hour.
LAKE_CUSTOMERS = f"{{{{ ti.xcom_pull(task_ids='check_quality', key='{XCOM_KEY}')['enriched_customers'] | int }}}}"
HOUR_ARGS = ["--lake-root", macros.LAKE_ROOT, "--start", macros.HOUR_START, "--end", macros.HOUR_END, *LEASE_ARGS]


@dag(
    dag_id="customer_enrichment",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,  # not 1: backfills run two hours at once; runs of ONE hour wait in claim_hour
    user_defined_macros=macros.MACROS,
    doc_md=__doc__,
    tags=["hourly", "spark", "customers"],
    params={
        "hour": Param(
            None,
            type=["null", "string"],
            pattern=HOUR_PARAM_PATTERN,
            title="Hour to (re)process",
            description="Start of a whole UTC hour, e.g. 2026-11-24T10:00:00+00:00. Empty: the run's own hour.",
        )
    },
    default_args=pipeline_default_args(max_retry_delay=timedelta(minutes=10), execution_timeout=timedelta(minutes=30)),
    deadline=hour_deadline(),  # late hour: TRICLOUD_HOUR_DEADLINE_MINUTES after its interval ends
)
def customer_enrichment():
    claim_hour = ClaimHourSensor(task_id="claim_hour", hour=macros.HOUR_START, lake_root=macros.LAKE_ROOT)
    # keep_alive renews the lease (a store error never fails it): a slow cluster start must not outlast its TTL.
    start_cluster = StartClusterOperator(task_id="start_cluster", workers=1, pre_execute=keep_alive)

    ingest_customers = SparkJobOperator(
        task_id="ingest_customer_data",
        application=settings.job_path("ingest_customers"),
        application_args=HOUR_ARGS,
        conf=SHORT_JOB_CONF,
        pre_execute=fence,
    )
    ingest_products = SparkJobOperator(
        task_id="ingest_product_data",
        application=settings.job_path("ingest_products"),
        application_args=HOUR_ARGS,
        conf=SHORT_JOB_CONF,
        pre_execute=fence,
    )

    # The enriched hour's asset event comes from the gate, so a gated-out hour triggers no consumer.
    # A failed verdict is deterministic (not retried); a read error is retried (tricloud.retries).
    @task(task_id="check_quality", outlets=[ENRICHED_CUSTOMER_HOURLY], pre_execute=fence)  # verdict file: a write
    def check_quality(data_interval_start=None, data_interval_end=None, dag_run=None, params=None, **context) -> dict:
        """The hour's data-quality gate (include/quality.py); fails, unretried, naming each failed check.
        Passed: emits ``customer_hourly_enriched`` for the hour (partition key = the hour)."""
        from tricloud.assets import describe_outlets
        from tricloud.hours import resolve_hour
        from tricloud.quality import gate_hour

        start, _ = resolve_hour(data_interval_start, data_interval_end, dag_run, params["hour"])
        verdict = gate_hour(settings.lake_root(), start, context["ti"])
        describe_outlets(context, hour=start.isoformat())
        return verdict

    @task(task_id="revise_daily_report", outlets=[REVISED_CUSTOMER_HOURLY])
    def revise_daily_report(data_interval_start=None, data_interval_end=None, dag_run=None, params=None, **context):
        """Emit the hour as revised if its day's report is out of date with it; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.reports import hour_needs_revision
        from tricloud.assets import describe_outlets
        from tricloud.hours import resolve_hour

        start, _ = resolve_hour(data_interval_start, data_interval_end, dag_run, params["hour"])
        if not hour_needs_revision(settings.lake_root(), start):
            raise AirflowSkipException(f"the report of {start:%Y-%m-%d} is not built yet or already shows this hour")
        describe_outlets(context, hour=start.isoformat())
        return start.isoformat()

    stop_cluster = StopClusterOperator(task_id="stop_cluster", start_task_id="start_cluster", pre_execute=keep_alive)

    # Operators, not @task functions, so they report the datasets they really read and wrote (lineage).
    enriched = EnrichHourOperator(
        task_id="enrich_customer_data",
        hour=macros.HOUR_START,
        lake_root=macros.LAKE_ROOT,
        pre_execute=fence,
    )
    start_cluster >> [ingest_customers, ingest_products] >> enriched >> stop_cluster

    with TaskGroup("replicate", prefix_group_id=False, tooltip="copy to three clouds, then verify") as replicate:
        copies = [
            # A cloud that is down is retried with backoff; the other clouds carry on.
            ReplicateHourOperator(
                task_id=f"replicate_to_{cloud}",
                cloud=cloud,
                hour=macros.HOUR_START,
                lake_root=macros.LAKE_ROOT,
                retries=3,
                pre_execute=fence,
            )
            for cloud in ("s3", "gcs", "azure")
        ]
        # A replica problem fails at try 1 (ReplicaCheckFailedError, deterministic): a repaired replica must
        # show as a failed run, not vanish in a retry. A cloud read that fails is retried like any I/O.
        verify = VerifyReplicasOperator(
            task_id="verify_replicas",
            hour=macros.HOUR_START,
            lake_root=macros.LAKE_ROOT,
            outlets=[REPLICATED_CUSTOMER_HOURLY],
            pre_execute=fence,  # its repairs write
        )
        copies >> verify
    gate = check_quality()
    enriched >> gate >> replicate
    verify >> revise_daily_report()
    loaded = LoadWarehouseOperator(
        task_id="load_warehouse",
        hour=macros.HOUR_START,
        lake_root=macros.LAKE_ROOT,
        conn_id="warehouse_default",
        pre_execute=fence,
    )
    gate >> loaded
    in_hour = f"window_start = '{macros.HOUR_START}'"  # the hour is a validated whole-hour timestamp
    warehouse_checks = [
        WarehouseColumnCheckOperator(
            task_id="check_warehouse_columns",
            conn_id="warehouse_default",
            table=WAREHOUSE_TABLE,
            partition_clause=in_hour,
            column_mapping={
                "customer_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                "spend": {"min": {"geq_to": 0}},
            },
            retry_on_failure=False,
            retries=0,
        ),
        WarehouseTableCheckOperator(
            task_id="check_warehouse_table",
            conn_id="warehouse_default",
            table=WAREHOUSE_TABLE,
            partition_clause=in_hour,
            checks={
                "rows_equal_lake": {"check_statement": f"COUNT(*) = {LAKE_CUSTOMERS}"},
                # Row-level, not the column check's MIN(order_count) >= 1: that MIN is NULL on an empty hour.
                "orders_at_least_one": {"check_statement": "order_count >= 1"},
                "items_cover_orders": {"check_statement": "items >= order_count"},
                "first_order_not_after_last": {"check_statement": "first_order_ts <= last_order_ts"},
            },
            retry_on_failure=False,
            retries=0,
        ),
    ]
    loaded >> warehouse_checks
    stop_cluster.as_teardown(setups=start_cluster)

    release_hour = ReleaseHourOperator(task_id="release_hour")
    claim_hour >> start_cluster
    [stop_cluster, verify, *warehouse_checks] >> release_hour
    release_hour.as_teardown(setups=claim_hour)


customer_enrichment()
