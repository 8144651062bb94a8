"""Failures of the running stack: a task killed from the API, Airflow itself killed mid-run. Each ends
with what landed in the lake: nothing lost, nothing duplicated. (The backfill with a missing hour runs
on the production topology: tests/e2e/test_prod_topology.py.)

The package's private local Airflow (tests/faults/conftest.py: own home and ports, only our runs), on the
session's Spark cluster and emulators.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psutil
import pytest

from include import generate
from tests.support.lake_checks import (
    assert_every_row_accounted_once,
    assert_partition_absent_or_complete,
    hour_digests,
)
from tests.support.stack import DAG_ID, task_states, wait_for_run
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault, pytest.mark.spark_submit]
BIG = 60_000  # rows: the job is killed as soon as spark-submit runs; enough to be mid-job


@pytest.fixture(scope="module")
def fault_stack(fault_airflow):
    return fault_airflow


def trigger_hour(client, hour: datetime, prefix: str) -> str:
    run_id = f"{prefix}_{hour:%Y%m%dT%H}"
    client.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": {"hour": hour.isoformat()}},
    )
    return run_id


def spark_processes(hour: datetime) -> list[psutil.Process]:
    """spark-submit (JVM) and the Python driver of ingest_customer_data for ``hour``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ingest_customers.py" in cmd and hour.isoformat() in cmd:
            found.append(p)
    return found


def clear(client, run_id: str) -> None:
    client.call("POST", f"/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False})


class TestTaskKilledFromTheAPI:
    def test_spark_is_gone_within_seconds_and_the_hour_is_never_half_written(self, fault_stack):
        _, client, _, root = fault_stack
        hour = datetime(2026, 11, 18, 3, tzinfo=UTC)
        generate.generate_hour(root, hour, rows=BIG, products=500)
        run_id = trigger_hour(client, hour, "kill")
        procs = wait_for(lambda: spark_processes(hour), 180, "the Spark job of the hour")
        client.call(
            "PATCH",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data",
            {"new_state": "failed"},
        )
        t0 = time.monotonic()
        wait_for(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs), 30, "Spark to stop"
        )
        print(f"spark-submit and driver gone {time.monotonic() - t0:.1f}s after mark-failed")
        assert spark_processes(hour) == []  # no orphan JVM or driver
        assert_partition_absent_or_complete(root, hour)

        # Recovery: clearing the run processes the hour completely, once.
        wait_for_run(client, run_id)
        clear(client, run_id)
        assert wait_for_run(client, run_id) == "success", task_states(client, run_id)
        assert_every_row_accounted_once(root, hour, BIG)


class TestAirflowKilledMidRun:
    def test_run_completes_after_restart_and_a_rerun_is_byte_identical(self, fault_stack):
        airflow, client, _, root = fault_stack
        hour = datetime(2026, 11, 18, 4, tzinfo=UTC)
        generate.generate_hour(root, hour, rows=BIG, products=500)
        run_id = trigger_hour(client, hour, "crash")
        wait_for(lambda: spark_processes(hour), 180, "the Spark job of the hour")
        airflow.kill()  # SIGKILL: api-server, scheduler (and its executor), dag-processor, triggerer
        time.sleep(3)
        left = spark_processes(hour)
        print(f"left running after the crash: {[p.pid for p in left]}")
        airflow.start()

        state = wait_for_run(client, run_id, timeout=900)
        if state == "failed":  # a clean failure is acceptable: then a clear must finish the hour
            clear(client, run_id)
            state = wait_for_run(client, run_id)
        assert state == "success", task_states(client, run_id)
        assert_every_row_accounted_once(root, hour, BIG)
        assert spark_processes(hour) == []

        first = hour_digests(root, hour)
        clear(client, run_id)
        assert wait_for_run(client, run_id) == "success"
        assert hour_digests(root, hour) == first  # the re-run wrote identical bytes
