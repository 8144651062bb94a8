"""The custom operators against a real Spark standalone cluster started from the pip pyspark."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from include import generate
from include.processes import alive as _alive
from stack.ports import free_port
from tests.support.cluster import scratch_cluster, scratch_port, stop_scratch
from tricloud import settings
from tricloud.links import SparkApplicationLink, SparkMasterUILink
from tricloud.operators import SparkJobOperator, StartClusterOperator, StopClusterOperator

pytestmark = [pytest.mark.spark, pytest.mark.spark_submit]
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"


class FakeTI:
    """Only what StopClusterOperator reads from its context: the start task's XCom."""

    def __init__(self, value):
        self.value = value

    def xcom_pull(self, task_ids):
        return self.value


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A second, private cluster on other ports, so start/stop do not disturb the shared one."""
    kwargs = scratch_cluster(tmp_path, monkeypatch)
    yield kwargs
    stop_scratch(kwargs)


class TestStartStopCluster:
    def test_start_registers_worker_then_teardown_stops_only_what_it_started(self, scratch, tmp_path):
        start = StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch)
        info = start.execute({})
        assert info["started"] is True
        ui_url = f"http://127.0.0.1:{scratch['webui_port']}"
        assert info["master_url"] == f"spark://127.0.0.1:{scratch_port()}"
        assert SparkMasterUILink().get_link(start, ti_key=None) == ui_url
        with urllib.request.urlopen(f"{ui_url}/json/") as resp:
            state = json.load(resp)
        assert state["status"] == "ALIVE"
        assert [w["state"] for w in state["workers"]] == ["ALIVE"]
        pids = [int(p.read_text()) for p in (tmp_path / "spark").glob("*.pid")]
        assert len(pids) == 2

        again = StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        assert again["started"] is False  # reused, not a second master

        stop = StopClusterOperator(task_id="stop", conn_id="spark_scratch", backend_kwargs=scratch)
        assert stop.execute({"ti": FakeTI(again)}) is False  # this "run" did not start it
        assert all(_alive(p) for p in pids)
        assert stop.execute({"ti": FakeTI(info)}) is True
        assert not any(_alive(p) for p in pids)  # no orphan JVMs
        assert stop.execute({"ti": FakeTI(info)}) is False  # already gone (a cleared teardown): success
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{ui_url}/json/", timeout=2)

    def test_restarts_a_dead_worker(self, scratch, tmp_path):
        import os
        import signal

        StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        worker = int((tmp_path / "spark" / "worker-0.pid").read_text())
        os.killpg(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        info = StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        assert info["started"] is True
        assert info["workers"] == 1


class TestSparkJobOperator:
    def test_runs_a_job_and_returns_its_metrics(self, spark_cluster, lake):
        gen = generate.generate_hour(lake, HOUR, rows=1000, products=200)
        op = SparkJobOperator(
            task_id="ingest_product_data",
            application=settings.job_path("ingest_products"),
            application_args=["--lake-root", str(lake), "--start", HOUR, "--end", HOUR_END],
            conf={"spark.cores.max": "1"},
        )
        result = op.execute({})
        assert result["rows_in"] == gen.product_rows
        assert result["rows_clean"] + result["rows_rejected"] == gen.product_rows
        assert result["output"] == str(lake / "clean/product_catalog/date=2026-11-24/hour=10")
        assert result["application_id"].startswith("app-")  # ran on the standalone master, not local
        assert lake.joinpath("clean/product_catalog/date=2026-11-24/hour=10/part-00000.parquet").exists()

        # The UI's extra links (computed on the executed operator, as the worker does after a task).
        assert SparkMasterUILink().get_link(op, ti_key=None) == spark_cluster.ui_url
        app_link = SparkApplicationLink().get_link(op, ti_key=None)
        assert app_link == f"{spark_cluster.ui_url}/app/?appId={result['application_id']}"
        with urllib.request.urlopen(app_link, timeout=10) as resp:
            assert result["application_id"] in resp.read().decode()  # the master kept the finished app

    def test_failing_job_surfaces_the_driver_error(self, spark_cluster, tmp_path):
        app = tmp_path / "boom.py"
        app.write_text(
            "from pyspark.sql import SparkSession\n"
            "SparkSession.builder.getOrCreate()\n"
            "raise ValueError('boom: the driver failed on purpose')\n"
        )
        from airflow.sdk.exceptions import AirflowException

        op = SparkJobOperator(task_id="boom", application=str(app))
        with pytest.raises(AirflowException) as err:
            op.execute({})
        assert "boom: the driver failed on purpose" in str(err.value)

    def test_missing_input_hour_fails_with_a_clear_message(self, spark_cluster, lake):
        from airflow.sdk.exceptions import AirflowException

        op = SparkJobOperator(
            task_id="ingest_customer_data",
            application=settings.job_path("ingest_customers"),
            application_args=["--lake-root", str(lake), "--start", HOUR, "--end", HOUR_END],
        )
        with pytest.raises(AirflowException, match="no input for hour 2026-11-24T10:00Z"):
            op.execute({})
        assert not (lake / "clean/customer_activity").exists()  # nothing half-published


class TestFailFast:
    def test_missing_connection_names_the_variable_to_set(self):
        from airflow.sdk.exceptions import AirflowNotFoundException

        op = SparkJobOperator(task_id="x", application=settings.job_path("ingest_products"), conn_id="spark_nope")
        with pytest.raises(AirflowNotFoundException, match="set AIRFLOW_CONN_SPARK_NOPE"):
            op.execute({})
        # Links of a task that never reached the cluster are empty, not broken URLs.
        assert SparkMasterUILink().get_link(op, ti_key=None) == ""
        assert SparkApplicationLink().get_link(op, ti_key=None) == ""

    def test_unreachable_master_fails_in_seconds(self, monkeypatch):
        nobody = free_port()  # reserved for us and nothing listens there
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_WRONG", f"spark://127.0.0.1:{nobody}?deploy-mode=client")
        op = SparkJobOperator(task_id="x", application=settings.job_path("ingest_products"), conn_id="spark_wrong")
        # Our reachability check's error (raised before spark-submit starts), not spark-submit's own
        # failure about a minute later: no job was submitted, so the task has no handle.
        with pytest.raises(ConnectionError, match=f"127.0.0.1:{nobody} is not reachable"):
            op.execute({})
        assert op._handle is None

    def test_wrong_connection_type(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_AWS", "aws://key:secret@")
        op = StartClusterOperator(task_id="x", conn_id="spark_aws")
        with pytest.raises(ValueError, match="expected one of \\('spark',\\)"):
            op.execute({})

    def test_operators_do_no_io_in_init(self):
        from airflow.sdk.exceptions import AirflowNotFoundException

        # Constructing with a missing connection must not fail: DAG files parse without connections.
        start = StartClusterOperator(task_id="a", conn_id="does_not_exist")
        job = SparkJobOperator(task_id="b", application="/nonexistent.py", conn_id="does_not_exist")
        # Even with a connection that exists, no backend is built before execute (a cached property) ...
        assert "backend" not in vars(SparkJobOperator(task_id="c", application="/nonexistent.py"))
        # ... and the missing connection is reported when the task runs, naming what to set.
        for op in (start, job):
            with pytest.raises(AirflowNotFoundException, match="set AIRFLOW_CONN_DOES_NOT_EXIST"):
                op.execute({})
