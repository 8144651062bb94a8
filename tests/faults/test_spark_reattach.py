"""A Spark task's process dies mid-job (issue 15): its retry re-attaches to the job still running and
starts no second one (Airflow 3.3's ResumableJobMixin + the local backend's detached runner).

The package's private local Airflow (tests/faults/conftest.py: own home and ports, scheduled runs off) runs ``customer_enrichment``
unchanged on the session's Spark cluster, emulators and test lake. The test SIGKILLs the task's own
process (the Task SDK's ``airflow worker -- <ti id>``) while its job runs, and holds the job's process
group stopped (SIGSTOP, visibly, by the test) until the retry has started, so that the retry meets a
job that is *still running* rather than one that finished in the retry delay. Jobs are counted by
the backend's records and by the driver log's launches, not by the operator's word.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from include import generate, lake
from tests.support.cluster import launches
from tests.support.stack import DAG_ID, task_states, wait_for_run
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault, pytest.mark.spark_submit]
TASK = "ingest_customer_data"


@pytest.fixture(scope="module")
def reattach_stack(fault_airflow):
    return fault_airflow


def job_records(root: Path, hour: datetime) -> list[dict]:
    """The local backend's records of ``TASK`` jobs of ``hour`` on this lake (any try, any key)."""
    jobs_dir = Path(os.environ["TRICLOUD_STATE_DIR"]) / "spark" / "jobs"
    found = []
    for path in sorted(jobs_dir.glob(f"tricloud-{TASK}.*.json")):
        record = json.loads(path.read_text())
        args = record["job"]["args"]
        if str(root) in args and args[args.index("--start") + 1] == hour.isoformat():
            found.append(record)
    return found


def task_process(ti_id: str) -> psutil.Process | None:
    """The Task SDK's task process (its title is ``airflow worker -- <ti id>``)."""
    for p in psutil.process_iter(["cmdline"]):
        if f"airflow worker -- {ti_id}" in " ".join(p.info["cmdline"] or []):
            return p
    return None


def ti_of(client, run_id: str) -> dict:
    tis = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return next(t for t in tis if t["task_id"] == TASK)


class TestWorkerDiesMidJob:
    def test_the_retry_reattaches_to_the_running_job_and_returns_its_metrics(self, reattach_stack):
        _, client, _, root = reattach_stack
        hour = datetime(2026, 11, 18, 6, tzinfo=UTC)
        gen = generate.generate_hour(root, hour, rows=20_000, products=150, seed=11)
        run_id = "worker_dies"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        # The job runs (its runner recorded it), then the task's process is SIGKILLed.
        (record,) = wait_for(
            lambda: [r for r in job_records(root, hour) if r["state"] == "RUNNING"] or None, 300, "the job to run"
        )
        ti = ti_of(client, run_id)
        assert ti["try_number"] == 1
        victim = wait_for(lambda: task_process(ti["id"]), 60, "the task's process")
        runner_group = record["pid"]
        os.killpg(runner_group, signal.SIGSTOP)  # hold the job mid-run until the retry is there
        try:
            victim.kill()
            wait_for(lambda: ti_of(client, run_id)["try_number"] == 2, 300, "Airflow to retry the task")
            wait_for(lambda: ti_of(client, run_id)["state"] == "running", 300, "the retry to start")
            time.sleep(3)  # the retry reads its stored handle and finds the job RUNNING
        finally:
            os.killpg(runner_group, signal.SIGCONT)

        assert wait_for_run(client, run_id, timeout=900) == "success", task_states(client, run_id)
        ti = ti_of(client, run_id)
        assert (ti["state"], ti["try_number"]) == ("success", 2)

        # One job, launched once, for both tries: no second spark-submit (or Connect session).
        records = job_records(root, hour)
        assert [(r["key"], r["launches"], r["state"]) for r in records] == [(record["key"], 1, "SUCCEEDED")]
        assert launches(Path(record["driver_log"]).read_text()) == 1

        log = str(client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/logs/2"))
        assert "Reconnecting to existing job" in log
        assert "may re-attach to it (adopted)" in log  # the hour lease let the adopted job publish

        # The re-attached task returned the job's metrics, and they match what landed in the lake.
        xcom = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/xcomEntries/return_value")[
            "value"
        ]
        result = json.loads(xcom) if isinstance(xcom, str) else xcom
        assert result["rows_in"] == gen.customer_rows
        summary = json.loads((lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path / lake.SUMMARY_FILE).read_text())
        assert result["rows_clean"] == summary["rows_clean"]
        assert result["rows_clean"] + result["rows_rejected"] == gen.customer_rows


class TestClearAfterSuccess:
    def test_clearing_a_succeeded_run_runs_the_job_again_on_the_new_input(self, reattach_stack):
        """Airflow keeps a task's state store across a clear: the stored handle of a succeeded job must not
        turn "clear to re-process the hour" into "return the old result"."""
        _, client, _, root = reattach_stack
        hour = datetime(2026, 11, 18, 7, tzinfo=UTC)
        generate.generate_hour(root, hour, rows=1500, products=150, seed=12)
        run_id = "cleared_after_success"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        assert wait_for_run(client, run_id, timeout=900) == "success", task_states(client, run_id)
        newer = generate.generate_hour(root, hour, rows=2500, products=150, seed=13)  # the input was fixed

        client.call("POST", f"/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False})
        wait_for(lambda: ti_of(client, run_id)["try_number"] == 2, 120, "the clear")
        assert wait_for_run(client, run_id, timeout=900) == "success", task_states(client, run_id)

        records = job_records(root, hour)
        assert [(r["key"].split("-")[1], r["launches"], r["state"]) for r in records] == [
            (f"{TASK}.1", 1, "SUCCEEDED"),
            (f"{TASK}.2", 1, "SUCCEEDED"),
        ]
        xcom = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/xcomEntries/return_value")[
            "value"
        ]
        result = json.loads(xcom) if isinstance(xcom, str) else xcom
        assert result["rows_in"] == newer.customer_rows
