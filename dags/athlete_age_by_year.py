"""
### athlete_age_by_year — mean Age per Year of Olympic athletes, on the Spark cluster

The classic parallel-processing example on `athlete_events.csv` (120 years of Olympic history):
`groupBy('Year').mean('Age')` with PySpark on the standalone cluster, the schema printed to the task
log, the result (Year, mean_age) stored as Parquet and CSV in `$LAKE_ROOT/athletes/mean_age_by_year/`
(asset `athletes_mean_age_by_year`), then replicated to S3, GCS and Azure Blob like the hourly outputs
(checksummed, manifest last).

**Input:** the real Kaggle file (271,116 rows, CC0), shipped gzip-compressed in
`include/athletes/data/`: `ensure_input` decompresses it to `$LAKE_ROOT/raw/athletes/athlete_events.csv`
and verifies its published sha256 (a damaged copy fails the task, naming the fix). Trigger with
`{"synthetic_rows": N}` to run on a generated file of N rows with the same schema instead (benchmarks).

**Schedule:** daily at 03:00 UTC — the source changes at most once per Games, so daily is ample; run it
any time with `airflow dags trigger athlete_age_by_year`. The same computation with multiprocessing,
dask, pandas, DuckDB and Polars lives in `include/athletes/engines.py` (compared in `bench/athletes.py`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, TaskGroup, dag, task

from tricloud import macros, settings
from tricloud.alerts import ON_FAILURE_BY_RUN
from tricloud.assets import ATHLETE_MEAN_AGE
from tricloud.operators import ReplicatePathOperator, SparkJobOperator, StartClusterOperator, StopClusterOperator
from tricloud.spark_conf import SHORT_JOB_CONF
from tricloud.task_defaults import pipeline_default_args

INPUT = "{{ ti.xcom_pull(task_ids='ensure_input') }}"


@dag(
    dag_id="athlete_age_by_year",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    user_defined_macros=macros.MACROS,
    doc_md=__doc__,
    params={
        "synthetic_rows": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="empty: the real shipped file; a number: a generated file of that many rows",
        )
    },
    tags=["spark", "olympics", "example"],
    default_args=pipeline_default_args(on_failure_callback=ON_FAILURE_BY_RUN),  # no hourly interval: name the run
)
def athlete_age_by_year():
    start_cluster = StartClusterOperator(task_id="start_cluster")

    @task(task_id="ensure_input")
    def ensure_input(params=None) -> str:
        """The verified real file in the lake (default), or a generated one of ``synthetic_rows`` rows."""
        from pathlib import Path

        from include import paths
        from include.athletes import data, generate

        # Before anything is written: an s3:// root would become a local "s3:" folder (ConfigError: no retry).
        paths.require_local_lake(settings.lake_root(), "the athlete DAG")
        raw = Path(settings.lake_root()) / "raw/athletes"
        rows = params["synthetic_rows"]
        if rows is None:
            return str(data.extract(raw / "athlete_events.csv"))
        path = raw / f"athlete_events.synthetic-{rows}.csv"
        if not path.exists():
            generate.generate(path, rows)
        return str(path)

    mean_age = SparkJobOperator(
        task_id="mean_age_by_year",
        application=settings.job_path("athlete_age_by_year"),
        application_args=["--input", INPUT, "--lake-root", macros.LAKE_ROOT],
        conf={**SHORT_JOB_CONF, "spark.cores.max": "2"},  # two 1-core executors, or one beside a Connect server
        outlets=[ATHLETE_MEAN_AGE],
    )
    stop_cluster = StopClusterOperator(task_id="stop_cluster")

    start_cluster >> ensure_input() >> mean_age >> stop_cluster

    with TaskGroup("replicate", prefix_group_id=False, tooltip="copy the result to three clouds") as replicate:
        for cloud in ("s3", "gcs", "azure"):
            ReplicatePathOperator(
                task_id=f"replicate_to_{cloud}",
                cloud=cloud,
                path="athletes/mean_age_by_year",
                lake_root=macros.LAKE_ROOT,
                retries=3,
            )
    mean_age >> replicate
    stop_cluster.as_teardown(setups=start_cluster)


athlete_age_by_year()
