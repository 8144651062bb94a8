"""Spark failures on a real standalone cluster: a worker killed mid-job, the master gone between runs.

Each test uses a private cluster on other ports (the shared one of the other tests stays untouched)
and checks what landed afterwards, not only the task's state.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import psutil
import pyarrow.parquet as pq
import pytest

from include import generate, lake
from tests.support.cluster import LAUNCH_LINES, cluster_roles, scratch_cluster, scratch_port, stop_scratch
from tricloud import settings
from tricloud.operators import SparkJobOperator, StartClusterOperator

pytestmark = [pytest.mark.spark, pytest.mark.fault, pytest.mark.spark_submit]
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    kwargs = scratch_cluster(tmp_path / "cluster", monkeypatch)
    yield kwargs
    stop_scratch(kwargs)


def ingest(root, scratch, **kwargs) -> SparkJobOperator:
    return SparkJobOperator(
        task_id="ingest_customer_data",
        application=settings.job_path("ingest_customers"),
        application_args=["--lake-root", str(root), "--start", HOUR, "--end", HOUR_END],
        conn_id="spark_scratch",
        conf={"spark.cores.max": "1"},
        backend_kwargs=scratch,
        **kwargs,
    )


def outputs(root) -> dict[str, object]:
    """Rows of every published file of the hour (Spark's Parquet bytes are not stable across lakes)."""
    found = {}
    for dataset in (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS):
        part = lake.partition(root, dataset, HOUR).path
        for f in sorted(part.glob("*")):
            if f.suffix == ".parquet":
                found[f"{dataset[0]}/{f.name}"] = pq.read_table(f)
            else:  # summaries name their files: compare them relative to the lake
                found[f"{dataset[0]}/{f.name}"] = json.loads(f.read_text().replace(str(root), "<lake>"))
    return found


def cluster_jvms(port: str) -> set[int]:
    """The JVMs (master, workers, the Connect server in ``connect`` mode) serving the cluster on ``port``."""
    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [""])[0].endswith("java") and any(port in a for a in p.info["cmdline"])
    }


def spark_submits(application: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if application in " ".join(p.info["cmdline"] or [])]


def job_started(scratch: dict, root) -> bool:
    """The job on ``root`` runs on the cluster: spark-submit's application is registered with the master, or
    (``connect`` mode: the server is registered all along) its runner opens a session on the Connect server."""
    from tricloud.cluster.local_connect import CONNECT, SERVER_APP_NAME, submit_mode

    if submit_mode() == CONNECT:
        for record in (scratch["state_dir"] / "spark" / "jobs").glob("*.json"):
            job = json.loads(record.read_text())
            log = record.with_suffix(".log")
            if str(root) in job["job"]["args"] and log.exists() and LAUNCH_LINES[1] in log.read_text():
                return True
        return False
    apps = json.load(urllib.request.urlopen(f"http://127.0.0.1:{scratch['webui_port']}/json/"))["activeapps"]
    return any(a.get("name") != SERVER_APP_NAME for a in apps)


class TestWorkerKilledMidJob:
    def test_task_fails_saying_why_then_the_retry_equals_a_clean_run(self, scratch, tmp_path):
        StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        clean_root, faulty_root = tmp_path / "clean", tmp_path / "faulty"
        for root in (clean_root, faulty_root):
            generate.generate_hour(root, HOUR, rows=20000, products=300)
        ingest(clean_root, scratch).execute({})
        expected = outputs(clean_root)

        # The worker dies as soon as the job's application is registered.
        op = ingest(faulty_root, scratch, lost_cluster_timeout=10)
        errors: list[BaseException] = []
        worker_pid = int((scratch["state_dir"] / "spark" / "worker-0.pid").read_text())

        def run():
            try:
                op.execute({})
            except BaseException as err:
                errors.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        while not job_started(scratch, faulty_root):
            assert time.monotonic() < deadline and thread.is_alive(), "the job never registered"
            time.sleep(0.2)
        os.killpg(worker_pid, signal.SIGKILL)
        thread.join(300)  # a hang guard, not a timing claim
        assert not thread.is_alive(), "the task hung instead of failing"
        (err,) = errors
        # Stopped by the operator's lost-cluster watchdog, with the timeout it was given (not by a hang guard).
        assert "lost every worker during the job and had none back for 10s" in str(err)
        time.sleep(2)
        assert spark_submits(str(faulty_root)) == []  # spark-submit and its driver are gone
        assert outputs(faulty_root) == {}  # nothing half-published

        # Airflow's retry: the operator restarts the dead worker under the live master, then runs.
        result = ingest(faulty_root, scratch).execute({})
        assert result["rows_in"] == 20000
        assert outputs(faulty_root).keys() == expected.keys()
        for name, value in outputs(faulty_root).items():
            assert value == expected[name] if not hasattr(value, "equals") else value.equals(expected[name]), name


class TestMasterGoneBetweenRuns:
    def test_start_cluster_brings_a_new_cluster_and_leaves_no_orphans(self, scratch):
        first = StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        assert first["started"] is True
        state = scratch["state_dir"] / "spark"
        old = {p.stem: int(p.read_text()) for p in state.glob("*.pid")}
        os.killpg(old["master"], signal.SIGKILL)  # the master dies; its worker is left behind
        deadline = time.monotonic() + 30
        while psutil.pid_exists(old["master"]) and psutil.Process(old["master"]).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.2)

        again = StartClusterOperator(task_id="start", conn_id="spark_scratch", backend_kwargs=scratch).execute({})
        assert again["started"] is True and again["workers"] == 1
        new = {p.stem: int(p.read_text()) for p in state.glob("*.pid")}
        assert set(new) == cluster_roles()
        # Exactly the master and worker JVMs named by the pid files serve this cluster: the surviving worker
        # re-registered with the new master, nothing runs unaccounted for.
        assert cluster_jvms(str(scratch_port())) == set(new.values())
        assert not psutil.pid_exists(old["master"]) or psutil.Process(old["master"]).status() == psutil.STATUS_ZOMBIE


class TestConcurrentStarts:
    def test_tasks_starting_the_cluster_at_once_start_it_once_and_orphan_nothing(self, scratch):
        """Both ingest tasks (or two DAGs) find the cluster down at the same moment."""
        from tricloud.cluster.local import LocalStandaloneBackend

        results, errors = [], []

        def start() -> None:
            try:
                results.append(LocalStandaloneBackend.from_settings(conn_id="spark_scratch", **scratch).start())
            except Exception as err:
                errors.append(err)

        threads = [threading.Thread(target=start) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert errors == []
        assert sorted(r.started for r in results) == [False, False, True]  # one started it, two reused it
        pids = {p.stem: int(p.read_text()) for p in (scratch["state_dir"] / "spark").glob("*.pid")}
        assert set(pids) == cluster_roles()
        assert cluster_jvms(str(scratch_port())) == set(pids.values())  # no JVM without a pid file
