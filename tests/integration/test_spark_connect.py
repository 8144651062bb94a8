"""Jobs through the local cluster's Spark Connect server (issue 16, section 1), on the real cluster and server.

The same job module runs through spark-submit and through a Connect session and must publish the same
rows and metrics; a dead server is restarted by ``start``; a job whose server died fails saying so and its
retry succeeds; cancel interrupts the job and leaves the server serving. The server runs on the session's
cluster and is stopped at the end of the module (it holds a core while it has work).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from include import generate
from include import lake as lake_layout
from include.processes import alive
from tests.support.waiting import wait_for
from tricloud import settings
from tricloud.cluster import JobState
from tricloud.cluster.local_connect import MODE_ENV, listens_on
from tricloud.operators import SparkJobOperator

pytestmark = pytest.mark.spark
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"


@pytest.fixture(scope="module")
def connect_backend(spark_cluster):
    """The session's cluster in ``connect`` mode, its Connect server started; the server stopped after the module."""
    from tricloud.cluster.local import LocalStandaloneBackend

    backend = LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1, mode="connect")
    backend.start()
    yield backend
    backend.stop_connect()


def ingest(job: str, lake: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> SparkJobOperator:
    """The DAG's ingest task for ``job`` on ``lake``, its backend in ``mode``."""
    monkeypatch.setenv(MODE_ENV, mode)
    monkeypatch.setenv("LAKE_ROOT", str(lake))
    return SparkJobOperator(
        task_id=f"{job}_{mode}",
        application=settings.job_path(job),
        application_args=["--lake-root", str(lake), "--start", HOUR, "--end", HOUR_END],
        conf={"spark.cores.max": "1", "spark.executor.cores": "1"},
    )


def record_of(op: SparkJobOperator) -> dict:
    return json.loads(op.backend.jobs.path(op._handle.key).read_text())


def rows(partition: Path) -> list[tuple]:
    """The partition's Parquet rows, sorted (None-safe), read by pyarrow, not by Spark."""
    table = pq.read_table(partition)
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


class TestSameOutputsBothWays:
    @pytest.mark.parametrize(
        ("job", "clean", "rejects"),
        [
            ("ingest_customers", lake_layout.CLEAN_CUSTOMERS, lake_layout.REJECTS_CUSTOMERS),
            ("ingest_products", lake_layout.CLEAN_PRODUCTS, lake_layout.REJECTS_PRODUCTS),
        ],
    )
    def test_spark_submit_and_connect_publish_the_same_rows_and_metrics(
        self, connect_backend, tmp_path, monkeypatch, job, clean, rejects
    ):
        lakes = {mode: tmp_path / mode for mode in ("spark-submit", "connect")}
        generate.generate_hour(lakes["spark-submit"], HOUR, rows=3000, products=300)
        shutil.copytree(lakes["spark-submit"], lakes["connect"])
        results = {}
        for mode, lake in lakes.items():
            op = ingest(job, lake, monkeypatch, mode)
            results[mode] = op.execute({})
            assert record_of(op)["mode"] == mode  # really run both ways
        start = lake_layout.parse_hour(HOUR)
        for dataset in (clean, rejects):
            a, b = (rows(lake_layout.partition(lake, dataset, start).path) for lake in lakes.values())
            assert a == b and a  # the same non-empty rows
        summaries = [
            json.loads((lake_layout.partition(lake, clean, start).path / lake_layout.SUMMARY_FILE).read_text())
            for lake in lakes.values()
        ]

        def data_metrics(m: dict, lake: Path) -> dict:
            return {
                k: v
                for k, v in m.items()
                if not str(v).startswith(str(lake)) and k not in ("application_id", "application")
            }

        assert data_metrics(summaries[0], lakes["spark-submit"]) == data_metrics(summaries[1], lakes["connect"])
        assert data_metrics(results["spark-submit"], lakes["spark-submit"]) == data_metrics(
            results["connect"], lakes["connect"]
        )
        assert results["connect"]["rows_in"] > 0
        # Each ran as its own Spark application: the Connect job's is the server's.
        assert results["connect"]["application_id"] != results["spark-submit"]["application_id"]


class TestDataErrors:
    @pytest.mark.parametrize(
        ("broken", "error"),
        [(None, "NoInputError"), ("", "InputFormatError")],  # no file; an empty file (no header line)
    )
    def test_a_bad_input_exits_with_the_data_error_code_and_is_not_retried(
        self, connect_backend, tmp_path, monkeypatch, broken, error
    ):
        from include.jobs import DATA_ERROR_EXIT
        from tricloud.operators.spark import SparkJobDataError

        lake = tmp_path / "lake"
        if broken is not None:
            raw = lake_layout.partition(lake, lake_layout.RAW_CUSTOMERS, lake_layout.parse_hour(HOUR)).path
            raw.mkdir(parents=True)
            (raw / lake_layout.RAW_CUSTOMERS_FILE).write_text(broken)
        op = ingest("ingest_customers", lake, monkeypatch, "connect")
        with pytest.raises(SparkJobDataError, match=error):
            op.execute({})
        record = record_of(op)
        assert record["mode"] == "connect"
        # The same exit code as spark-submit's `common.run`: the operator decides on the code, not the text.
        assert record["exit_code"] == DATA_ERROR_EXIT
        assert record["error"].startswith(f"{error}: ")


class TestTimings:
    def test_a_connect_job_records_each_phase_in_order_and_no_airflow_is_loaded_for_it(
        self, connect_backend, lake, monkeypatch
    ):
        import subprocess
        import sys

        generate.generate_hour(lake, HOUR, rows=2000, products=200)
        op = ingest("ingest_customers", lake, monkeypatch, "connect")
        op.execute({})
        timings = record_of(op)["timings"]
        order = ["submit", "spawned", "runner", "imported", "session", "ran", "stopped", "recorded"]
        assert [t for t in order if t in timings] == order
        assert [timings[t] for t in order] == sorted(timings[t] for t in order)
        # What the Connect runner imports (its modules, pyspark's client, the job): no Airflow among them.
        code = (
            "import sys; import tricloud.cluster.local_driver, tricloud.cluster.local_connect_runner, "
            "include.jobs.ingest_customers, pyspark.sql; print(sorted(m for m in sys.modules if m.startswith('airflow')))"
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(settings.PROJECT_ROOT / "plugins"), str(settings.PROJECT_ROOT)]),
        }
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == "[]"


class TestServerLifecycle:
    def test_a_dead_server_is_restarted_by_start(self, connect_backend):
        connect_backend.start()
        _, port, _ = connect_backend.connect_endpoint()
        old = connect_backend.pids()["connect"]
        os.killpg(old, signal.SIGKILL)
        wait_for(lambda: not alive(old), 30, "the server to die")
        assert not connect_backend.connect_alive()
        info = connect_backend.start()
        new = connect_backend.pids()["connect"]
        assert new != old and listens_on(new, port)  # the new process itself listens
        assert info.details["connect_url"] == f"sc://127.0.0.1:{port}/"
        assert connect_backend.status().active_apps == 0  # the server is not counted as a job

    def test_a_job_whose_server_died_fails_saying_so_and_its_retry_succeeds(self, connect_backend, lake, monkeypatch):
        from airflow.sdk.exceptions import AirflowException

        generate.generate_hour(lake, HOUR, rows=20_000, products=500)
        op = ingest("ingest_customers", lake, monkeypatch, "connect")
        connect_backend.start()
        server = connect_backend.pids()["connect"]
        handle = op.backend.submit(op.build_job({}))
        assert connect_backend.pids()["connect"] == server  # the job runs on that server
        log = Path(op.backend.driver_log(handle))
        wait_for(lambda: "Spark Connect session" in log.read_text(), 60, "the runner to start the job")
        os.killpg(server, signal.SIGKILL)
        wait_for(lambda: op.backend.job_status(handle).state.terminal, 120, "the job to end")
        status = op.backend.job_status(handle)
        assert status.state is JobState.FAILED
        assert "Spark Connect server at sc://127.0.0.1" in status.message and "died during the job" in status.message
        assert "retry" in status.message
        # The retry (a new try: a new key) finds the server dead and starts it before running the job.
        retry = ingest("ingest_customers", lake, monkeypatch, "connect")
        try:
            result = retry.execute({})
        except AirflowException as err:  # pragma: no cover - the message says why
            pytest.fail(f"the retry failed: {err}")
        assert result["rows_in"] > 0
        assert connect_backend.pids()["connect"] != server


class TestCancel:
    def test_cancel_interrupts_the_job_and_the_server_keeps_serving(self, connect_backend, lake, monkeypatch):
        generate.generate_hour(lake, HOUR, rows=60_000, products=500)
        op = ingest("ingest_customers", lake, monkeypatch, "connect")
        handle = op.backend.submit(op.build_job({}))
        op._handle = handle
        log = Path(op.backend.driver_log(handle))
        wait_for(lambda: "Spark Connect session" in log.read_text(), 60, "the runner to start the job")
        # The server's write of the clean partition has begun: Spark creates its staging directory.
        zone, dataset = lake_layout.CLEAN_CUSTOMERS
        wait_for(lambda: any((lake / "_staging").glob(f"{zone}.{dataset}.*")), 120, "the job's write to start", 0.05)
        runner = psutil.Process(record_of(op)["pid"])
        op.backend.cancel(handle)
        assert not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE
        record = record_of(op)
        assert record["state"] == JobState.CANCELLED
        assert "its operations on the server were interrupted" in log.read_text()  # the runner's own SIGTERM path
        assert not lake_layout.partition(lake, lake_layout.CLEAN_CUSTOMERS, lake_layout.parse_hour(HOUR)).path.exists()
        assert connect_backend.connect_alive()
        # The server serves the next job (nothing of the cancelled one blocks it).
        again = ingest("ingest_products", lake, monkeypatch, "connect")
        assert again.execute({})["rows_in"] > 0
