"""How much Spark work one ingest job runs (issue 16 §1), and the row accounting that replaced the read-backs.

The classified rows are computed once and cached: one aggregation counts them (filling the cache), the two
writes read the cache, and the rows that landed come from the Parquet footers. Before session 9 the
customers job ran 15 Spark jobs and the products job 17 (the dedupe window twice, Parquet read back and
counted, ``isEmpty``); bench/results/ingest_passes.md has both counts on the same hour.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from include import generate, lake
from include.jobs import accounting, common, ingest_customers, ingest_products

HOUR = "2026-11-18T07:00:00+00:00"
HOUR_END = "2026-11-18T08:00:00+00:00"
#: Spark jobs one ingest may run: the window's shuffle map stage, the cache's materialisation, the
#: aggregation's map and result stages (adaptive query execution submits each as a job), the two writes.
MAX_SPARK_JOBS = 6


@pytest.mark.parametrize(
    ("job", "dataset", "generated"),
    [
        (ingest_customers, lake.CLEAN_CUSTOMERS, "customer_rows"),
        (ingest_products, lake.CLEAN_PRODUCTS, "product_rows"),
    ],
)
def test_one_ingest_runs_few_spark_jobs_and_releases_its_cache(spark, tmp_path, job, dataset, generated):
    hour = generate.generate_hour(tmp_path, HOUR, rows=300, products=40, seed=12)
    argv = ["--lake-root", str(tmp_path), "--start", HOUR, "--end", HOUR_END]
    sc = spark.sparkContext
    cached_before = set(sc._jsc.getPersistentRDDs().keySet())  # other tests' (the athlete engines cache too)
    group = f"ingest-passes-{job.__name__}"
    sc.setJobGroup(group, "the Spark jobs of one ingest")
    try:
        metrics = job.run(spark.newSession(), argv)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    jobs = sc.statusTracker().getJobIdsForGroup(group)
    assert len(jobs) <= MAX_SPARK_JOBS, (
        f"{job.__name__} ran {len(jobs)} Spark jobs (at most {MAX_SPARK_JOBS}): an action was added; count with "
        "the one aggregation of include.jobs.accounting and take landed rows from Published.rows"
    )
    # The cache is shared by every session: the job released what it cached.
    assert set(sc._jsc.getPersistentRDDs().keySet()) == cached_before
    # What landed, counted independently of the footers: Spark reads the clean partition back.
    landed = spark.read.parquet(str(lake.partition(tmp_path, dataset, lake.parse_hour(HOUR)).path)).count()
    assert metrics["rows_clean"] == landed
    assert metrics["rows_in"] == getattr(hour, generated)
    assert metrics["rows_rejected"] == sum(metrics["rejected_by_reason"].values())


ARGS = argparse.Namespace(start=datetime(2026, 11, 18, 7, tzinfo=UTC))
COUNTED = accounting.RowCounts(rows_in=10, clean=7, by_reason={"bad_email": 2, "duplicate": 1})


def published(rows: int) -> common.Published:
    return common.Published("/lake/x", (), rows=rows)


class TestRowAccounting:
    def test_landed_as_counted_gives_the_metrics(self):
        metrics = accounting.hour_metrics("d", ARGS, "/raw/f.csv", published(7), published(3), COUNTED)
        assert (metrics["rows_in"], metrics["rows_clean"], metrics["rows_rejected"]) == (10, 7, 3)
        assert metrics["rejected_by_reason"] == {"bad_email": 2, "duplicate": 1}

    @pytest.mark.parametrize(
        ("clean", "rejected"),
        [
            (6, 3),  # a clean row lost in writing
            (7, 2),  # a reject lost
            (6, 4),  # the sum still matches rows_in, but a clean row landed among the rejects
            (8, 3),  # a row written twice
        ],
    )
    def test_landed_rows_that_differ_from_the_counted_ones_fail_the_hour(self, clean, rejected):
        with pytest.raises(accounting.RowAccountingError, match="row accounting broken"):
            accounting.hour_metrics("d", ARGS, "/raw/f.csv", published(clean), published(rejected), COUNTED)

    def test_published_rows_are_the_footers_of_what_landed(self, spark, tmp_path):
        df = spark.createDataFrame([(f"O{i}",) for i in range(5)], "order_id string")
        out = common.publish(df, str(tmp_path), lake.CLEAN_CUSTOMERS, lake.parse_hour(HOUR), ["order_id"])
        assert out.rows == 5
        assert spark.read.parquet(out.location).count() == 5


def test_a_cache_left_behind_by_a_cancelled_job_is_never_read_by_the_next(spark, tmp_path):
    """Spark's cache is shared by every session of the Connect server and matched by plan: a job cancelled
    before ``cached``'s ``finally`` leaves its entry; the next read of the re-sent file must see the file."""
    path = tmp_path / "in.csv"
    path.write_text("a\n1\n2\n3\n")
    leaked = common.cached(spark.read.csv(str(path), header=True))
    try:
        assert leaked.__enter__().count() == 3  # and never exited, as a cancelled Connect job
        path.write_text("a\n1\n2\n3\n4\n5\n")
        assert spark.read.csv(str(path), header=True).count() == 5
    finally:
        leaked.__exit__(None, None, None)
