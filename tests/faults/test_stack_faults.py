"""Failures of the running stack: a task killed from the API, Airflow itself killed mid-run, a backfill
with a missing hour. Each ends with what landed in the lake: nothing lost, nothing duplicated.

A private local Airflow (own home and ports), sharing the session's Spark cluster and emulators.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import psutil
import pyarrow.parquet as pq
import pytest

from include import generate, lake
from tests.support.stack import DAG_ID, private_stack, task_states, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault]
BIG = 60_000  # rows: the job is killed as soon as spark-submit runs; enough to be mid-job


@pytest.fixture(scope="module")
def fault_stack(spark_cluster, emulators):
    with private_stack(
        "test-fault-airflow",
        8087,
        8796,
        # Only our runs (no scheduled hour competing); a killed task's heartbeat is missed in 30 s.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
    ) as stack:
        yield stack


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


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)
    return value


def assert_partition_absent_or_complete(root, hour: datetime) -> None:
    part = lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path
    if part.exists():
        assert (part / lake.SUMMARY_FILE).is_file()
        assert (
            pq.read_table(part / "part-00000.parquet").num_rows
            == lake.read_json(part / lake.SUMMARY_FILE)["rows_clean"]
        )


def assert_every_row_accounted_once(root, hour: datetime, rows: int) -> None:
    part = lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path
    summary = lake.read_json(part / lake.SUMMARY_FILE)
    clean = pq.read_table(part / "part-00000.parquet")
    rejects = pq.read_table(lake.partition(root, lake.REJECTS_CUSTOMERS, hour).path / "part-00000.parquet")
    assert summary["rows_in"] == rows
    assert clean.num_rows + rejects.num_rows == rows  # nothing lost
    assert len(set(clean.column("order_id").to_pylist())) == clean.num_rows  # nothing duplicated


def hour_digests(root, hour: datetime) -> dict[str, str]:
    out = {}
    for dataset in lake.HOURLY_OUTPUTS:
        for f in sorted(lake.partition(root, dataset, hour).path.glob("*")):
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


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


@pytest.mark.slow
@pytest.mark.skip(
    reason="Airflow 3.3 refuses backfill creation on SQLite under concurrent access (HTTP 503 'Database is "
    "locked'): this scenario has to run on the Postgres topology (stack.prod); not moved yet"
)
@pytest.mark.timeout(2400)  # 24 runs on 2 cores: longer than the suite's 15-minute per-test limit allows
class TestBackfillWithAMissingHour:
    def test_23_hours_succeed_the_missing_one_fails_clearly_and_cost_stays_flat(self, fault_stack):
        _, client, _, root = fault_stack
        hours = [datetime(2026, 11, 10, h, tzinfo=UTC) for h in range(24)]
        missing = hours[13]
        for h in hours:
            if h != missing:
                generate.generate_hour(root, h, rows=500, products=100)
        backfill = client.call(
            "POST",
            "/backfills",
            {
                "dag_id": DAG_ID,
                "from_date": hours[0].isoformat(),
                "to_date": hours[-1].isoformat(),
                "max_active_runs": 2,
            },
        )
        deadline = time.monotonic() + 1800
        while True:
            runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
            if len(runs) == 24 and all(r["state"] in ("success", "failed") for r in runs):
                break
            assert time.monotonic() < deadline, {r["dag_run_id"]: r["state"] for r in runs}
            time.sleep(5)
        print(f"backfill {backfill['id']}: {len(runs)} runs")
        by_hour = {}
        for r in runs:
            ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}/taskInstances/ingest_customer_data")
            by_hour[r["data_interval_start"]] = (r, ingest)
        assert sorted(by_hour) == [h.isoformat().replace("+00:00", "Z") for h in hours]
        failed = [k for k, (r, _) in by_hour.items() if r["state"] == "failed"]
        assert failed == [missing.isoformat().replace("+00:00", "Z")]
        run, ingest = by_hour[failed[0]]
        log = client.call(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/ingest_customer_data/logs/{ingest['try_number']}",
        )
        assert "no input for hour 2026-11-10T13:00Z" in str(log)
        for h in hours:
            if h != missing:
                assert_every_row_accounted_once(root, h, 500)
        assert not lake.partition(root, lake.CLEAN_CUSTOMERS, missing).path.exists()

        # Per-hour cost stays flat: the last hours take no longer than the first ones.
        durations = [
            (datetime.fromisoformat(r["end_date"]) - datetime.fromisoformat(r["start_date"])).total_seconds()
            for k, (r, _) in sorted(by_hour.items())
            if r["state"] == "success"
        ]
        first, last = sorted(durations[:6])[3], sorted(durations[-6:])[3]
        print(f"backfill per-hour seconds: first six (median) {first:.0f}, last six {last:.0f}, all {durations}")
        assert last <= 1.5 * first + 10
        assert timedelta(seconds=max(durations)) < timedelta(minutes=5)
