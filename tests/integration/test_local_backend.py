"""The local backend's job lifecycle on the real standalone cluster (issue 15): metrics through the lake,
the driver's error on failure, cancel, and one job per key.

The jobs run detached (``tricloud.cluster.local_driver``) and are counted by their records in
``<state dir>/spark/jobs/`` and by the processes that run them, never by our own bookkeeping alone.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from include import generate
from tests.support.cluster import launches
from tests.support.waiting import wait_for
from tricloud import settings
from tricloud.cluster import JobState, SparkJob, job_key
from tricloud.cluster.local_connect import MODE_ENV, SPARK_SUBMIT
from tricloud.links import ClusterConsoleLink, DriverLogLink, JobPageLink
from tricloud.operators import SparkJobOperator

pytestmark = [pytest.mark.spark, pytest.mark.spark_submit]
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"


def processes_running(needle: str) -> list[psutil.Process]:
    """Live processes (runner, spark-submit, Python driver) whose command line contains ``needle``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and needle in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def ingest_products(lake: Path, **kwargs) -> SparkJobOperator:
    return SparkJobOperator(
        task_id="ingest_product_data",
        application=settings.job_path("ingest_products"),
        application_args=["--lake-root", str(lake), "--start", HOUR, "--end", HOUR_END],
        conf={"spark.cores.max": "1"},
        **kwargs,
    )


class TestMetricsThroughTheLake:
    def test_the_result_is_the_metrics_the_driver_wrote_under_lake_jobs(self, spark_cluster, lake):
        gen = generate.generate_hour(lake, HOUR, rows=800, products=150)
        op = ingest_products(lake)
        result = op.execute({})
        assert result["rows_in"] == gen.product_rows
        # Written by the driver into the lake, read back by the backend: not a temp file of the worker.
        (metrics_file,) = (lake / "_jobs").glob("tricloud-ingest_product_data.1-*/metrics.json")
        written = json.loads(metrics_file.read_text())
        assert {k: v for k, v in result.items() if k != "application"} == written
        assert written["application_id"].startswith("app-")
        # Extra links: the master UI, the application's page there, the driver's log file.
        ui = spark_cluster.ui_url
        assert ClusterConsoleLink().get_link(op, ti_key=None) == ui
        assert JobPageLink().get_link(op, ti_key=None) == f"{ui}/app/?appId={written['application_id']}"
        log_uri = DriverLogLink().get_link(op, ti_key=None)
        assert log_uri.startswith("file://") and Path(log_uri.removeprefix("file://")).is_file()


class TestFailure:
    def test_the_task_fails_with_the_drivers_error_and_where_its_log_is(self, spark_cluster, tmp_path, capfd):
        from airflow.sdk.exceptions import AirflowException

        app = tmp_path / "broken.py"
        app.write_text(
            "from pyspark.sql import SparkSession\n"
            "SparkSession.builder.getOrCreate()\n"
            "raise KeyError('no column named customer_idd: the driver failed on purpose')\n"
        )
        op = SparkJobOperator(task_id="broken", application=str(app))
        with pytest.raises(AirflowException) as err:
            op.execute({})
        message = str(err.value)
        assert "no column named customer_idd" in message  # the driver's own error
        log_path = Path(message.split("Full driver log: ")[1].split()[0])
        assert "no column named customer_idd" in log_path.read_text()  # the full log is where it says
        task_log = "".join(capfd.readouterr())  # the operator's log (structlog writes to the stream)
        assert "Job tricloud-broken.1-" in task_log and "ended FAILED" in task_log
        assert "Full driver log:" in task_log and "no column named customer_idd" in task_log


class TestCancel:
    def test_killing_the_task_cancels_the_job_and_its_driver(self, spark_cluster, lake, monkeypatch):
        """spark-submit mode: its Python driver is a process of its own (a Connect job's cancel: test_spark_connect)."""
        monkeypatch.setenv(MODE_ENV, SPARK_SUBMIT)
        generate.generate_hour(lake, HOUR, rows=800, products=150)
        op = ingest_products(lake)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                op.execute({})
            except BaseException as err:
                errors.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        # The Python driver of this lake's job runs (spark-submit started it).
        drivers = wait_for(
            lambda: [p for p in processes_running(str(lake)) if "python" in p.info["cmdline"][0]], 120, "the driver"
        )
        op.on_kill()  # what Airflow calls when the task is killed
        thread.join(60)
        assert not thread.is_alive()
        assert errors and "CANCELLED" in str(errors[0])
        _, alive = psutil.wait_procs(drivers, timeout=10)
        assert alive == []  # driver gone
        assert processes_running(str(lake)) == []  # and spark-submit, and the runner
        record = json.loads(next(op.backend.jobs.dir.glob(f"{op._handle.key}.json")).read_text())
        assert record["state"] == JobState.CANCELLED
        assert not (lake / "clean/product_catalog/date=2026-11-24/hour=10").exists()  # nothing published


class TestIdempotentSubmit:
    def test_the_same_key_submitted_twice_starts_one_job(self, spark_cluster, spark_backend, lake):
        generate.generate_hour(lake, HOUR, rows=500, products=100)
        key = job_key("idempotency", "ingest_product_data", f"run-{time.time_ns()}")
        job = SparkJob(
            key=key,
            name="idempotency",
            application=settings.job_path("ingest_products"),
            args=("--lake-root", str(lake), "--start", HOUR, "--end", HOUR_END),
            result_uri=str(lake / "_jobs" / key / "metrics.json"),
            conf={"spark.cores.max": "1"},
        )
        # Two submitters at the same moment (a retry racing its predecessor), then one more later.
        handles = []
        threads = [threading.Thread(target=lambda: handles.append(spark_backend.submit(job))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(handles) == 2 and handles[0] == handles[1]
        runners = processes_running(f"{key}.json")
        assert len(runners) == 1  # one runner process
        wait_for(lambda: spark_backend.job_status(handles[0]).state.terminal, 180, "the job to end")
        assert spark_backend.job_status(handles[0]).state is JobState.SUCCEEDED
        again = spark_backend.submit(job)  # a succeeded job is returned, not run again
        assert again == handles[0]
        record = json.loads((spark_backend.jobs.dir / f"{key}.json").read_text())
        assert record["launches"] == 1
        log = Path(record["driver_log"]).read_text()
        assert launches(log) == 1  # one runner ever started for the key
        assert spark_backend.read_result(again)["rows_in"] > 0
