"""Jobs that share one Spark application (a Spark Connect server runs every job in a session of its own):
nothing one job cached answers the next job's read of the same path (issue 16, section 1).

Classic ``SparkSession.newSession()`` shares the application's cache exactly as the Connect server's
sessions do, so the local[1] session of the unit tests shows it without a server.
"""

from __future__ import annotations

import pytest

from include import generate
from include.jobs import ingest_customers, ingest_products

HOUR = "2026-11-18T07:00:00+00:00"
HOUR_END = "2026-11-18T08:00:00+00:00"


@pytest.mark.parametrize(("job", "counted"), [(ingest_customers, "customer_rows"), (ingest_products, "product_rows")])
def test_the_next_session_reads_the_input_as_it_is_now_not_what_a_job_before_cached(spark, tmp_path, job, counted):
    argv = ["--lake-root", str(tmp_path), "--start", HOUR, "--end", HOUR_END]
    first = generate.generate_hour(tmp_path, HOUR, rows=300, products=40, seed=12)
    assert job.run(spark.newSession(), argv)["rows_in"] == getattr(first, counted)
    fixed = generate.generate_hour(tmp_path, HOUR, rows=500, products=60, seed=13)  # the input was re-sent
    assert getattr(fixed, counted) != getattr(first, counted)
    assert job.run(spark.newSession(), argv)["rows_in"] == getattr(fixed, counted)
