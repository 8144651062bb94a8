"""Two runs of the same hour at once (issue 13): they never interleave, and every store ends up holding
exactly one run's output; a crashed holder does not block the hour.

The package's private local Airflow (tests/faults/conftest.py: own home and ports; scheduled runs off,
only ours), on the session's Spark cluster, emulators and test lake. The input of the hour is replaced between the two runs, so
the two outputs differ and a mix of them (or the first run's output anywhere) is visible.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import psutil
import pyarrow.parquet as pq
import pytest

from include import generate, lake
from include.lease import LEASE_LOST_EXIT, HourLease
from tests.support import reference
from tests.support.stack import DAG_ID, task_states, wait_for_run, warehouse_of
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault, pytest.mark.spark_submit]


@pytest.fixture(scope="module")
def lease_stack(fault_airflow):
    return fault_airflow


def task_instances(client, run_id: str) -> dict[str, dict]:
    tis = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {t["task_id"]: t for t in tis}


def spark_drivers(hour: datetime) -> list[psutil.Process]:
    """spark-submit and the Python driver of ingest_customer_data for ``hour``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ingest_customers.py" in cmd and hour.isoformat() in cmd:
            found.append(p)
    return found


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def write_input(root, hour: datetime, rows: int, seed: int) -> generate.GeneratedHour:
    return generate.generate_hour(root, hour, rows=rows, products=150, seed=seed)


def assert_every_store_holds_the_output_of(root, hour: datetime, gen, warehouse) -> None:
    """Lake, lake manifest, the three clouds and the warehouse hold one output: the one of ``gen``'s input."""
    from include.replication import (
        build_manifest,
        hour_prefixes,
        manifest_bytes,
        manifest_key,
        read_manifest,
        remote_sha256,
        verify_hour,
    )
    from tricloud.replication.stores import stores_from_env

    # The lake: the outputs of this input, computed independently from the raw files.
    orders, order_reasons = reference.clean_customers(gen.customer_file, hour)
    products, _ = reference.clean_products(gen.product_file)
    expected, unknown = reference.enrich(orders, products)
    summary = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, hour).path / lake.SUMMARY_FILE)
    assert summary["upstream"]["customer_activity"]["rows_in"] == gen.customer_rows
    assert summary["upstream"]["customer_activity"]["rejected_by_reason"] == order_reasons
    assert summary["orders_rejected_unknown_product"] == unknown
    enriched = pq.read_table(lake.partition(root, lake.ENRICHED_CUSTOMERS, hour).path / "part-00000.parquet")
    got = {r["customer_id"]: (r["order_count"], r["items"]) for r in enriched.to_pylist()}
    assert got == {cid: (e["order_count"], e["items"]) for cid, e in expected.items()}
    clean = pq.read_table(lake.partition(root, lake.CLEAN_CUSTOMERS, hour).path / "part-00000.parquet")
    rejects = pq.read_table(lake.partition(root, lake.REJECTS_CUSTOMERS, hour).path / "part-00000.parquet")
    assert clean.num_rows + rejects.num_rows == gen.customer_rows
    assert clean.num_rows == len(orders)

    # The lake's manifest lists exactly the lake's files, and every cloud holds exactly those bytes.
    local = build_manifest(root, hour)
    assert (root / manifest_key(hour)).read_bytes() == manifest_bytes(local)
    wanted = {f["path"]: f["sha256"] for f in local["files"]}
    for store in stores_from_env():
        assert read_manifest(store, hour) == local, store.name
        keys = {k for prefix in hour_prefixes(hour) for k in store.list_keys(prefix)}
        assert keys == set(wanted), (store.name, keys ^ set(wanted))
        for path, sha in wanted.items():
            assert remote_sha256(store, path) == sha, (store.name, path)
    report = verify_hour(stores_from_env(), root, hour, repair=False)
    assert report.problems == [], report.problems

    # The warehouse: the hour's rows are the enriched partition's, once.
    with sqlite3.connect(warehouse) as db:
        rows = db.execute(
            "SELECT customer_id, order_count, items FROM customer_hourly WHERE window_start = ?", (hour.isoformat(),)
        ).fetchall()
    assert len(rows) == len(got)
    assert {r[0]: (r[1], r[2]) for r in rows} == got


class TestTwoRunsOfOneHour:
    def test_started_together_they_run_one_after_the_other_and_every_store_holds_one_output(self, lease_stack):
        _, client, env, root = lease_stack
        hour = datetime(2026, 11, 19, 7, tzinfo=UTC)
        first_input = write_input(root, hour, rows=3000, seed=1)
        # Two ways people name the same hour: the trigger form's `hour`, the CLI's logical date.
        runs = ["by_param", "by_logical_date"]
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": runs[0], "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": runs[1], "logical_date": (hour + timedelta(hours=1)).isoformat()},
        )

        def ingested() -> str | None:
            for run_id in runs:
                tis = task_instances(client, run_id)
                if all(
                    tis.get(t, {}).get("state") == "success" for t in ("ingest_customer_data", "ingest_product_data")
                ):
                    return run_id
            return None

        first = wait_for(ingested, 300, "one run to ingest the hour")
        second = next(r for r in runs if r != first)
        # New data for the hour arrives: whichever run processes it next must publish it everywhere.
        second_input = write_input(root, hour, rows=2000, seed=2)
        assert second_input.customer_rows != first_input.customer_rows

        states = {r: wait_for_run(client, r, timeout=900) for r in runs}

        # Never interleaved: the second run did nothing but wait until the first had finished.
        a, b = task_instances(client, first), task_instances(client, second)
        first_done = max(_t(t["end_date"]) for t in a.values() if t["end_date"])
        second_began = min(_t(t["start_date"]) for k, t in b.items() if k != "claim_hour" and t["start_date"])
        print(f"{first} done {first_done:%H:%M:%S}; {second} began {second_began:%H:%M:%S}; {states}")
        assert second_began >= first_done, f"the two runs of the hour interleaved: {states}"
        assert states == {r: "success" for r in runs}, {r: task_states(client, r) for r in runs}

        assert_every_store_holds_the_output_of(root, hour, second_input, warehouse_of(env))
        history = HourLease(root, DAG_ID, hour).history()
        assert [(r.run_id, r.released) for r in history] == [(first, True), (second, True)]


class TestCrashedHolder:
    def test_a_run_waiting_for_a_holder_that_is_marked_failed_mid_run_completes(self, lease_stack):
        _, client, env, root = lease_stack
        hour = datetime(2026, 11, 19, 8, tzinfo=UTC)
        write_input(root, hour, rows=60_000, seed=3)  # big enough to still be mid-job when it is failed
        holder, waiter = "holder", "waiter"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": holder, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        wait_for(
            lambda: task_instances(client, holder).get("ingest_customer_data", {}).get("state") == "running",
            300,
            "the holder's Spark job",
        )
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": waiter, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        wait_for(
            lambda: task_instances(client, waiter).get("claim_hour", {}).get("state") == "up_for_reschedule",
            120,
            "the second run to wait for the hour",
        )
        assert task_instances(client, waiter).get("start_cluster", {}).get("state") in (None, "none")
        later_input = write_input(root, hour, rows=2500, seed=4)

        # The holder crashes (an operator marks it failed mid-run): the waiting run takes the hour over.
        client.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{holder}", {"state": "failed"})
        assert wait_for_run(client, waiter, timeout=900) == "success", task_states(client, waiter)
        # (Airflow 3.3 still runs a failed run's teardowns, release_hour among them, and may then call
        # the run a success: the hour is freed by the release, or else by the run's terminal state.)
        print(f"holder run ended {client.call('GET', f'/dags/{DAG_ID}/dagRuns/{holder}')['state']}")

        assert_every_store_holds_the_output_of(root, hour, later_input, warehouse_of(env))
        history = HourLease(root, DAG_ID, hour).history()
        assert [r.run_id for r in history] == [holder, waiter]
        assert history[-1].released

    def test_a_lease_left_behind_by_a_finished_run_does_not_block_the_hour(self, lease_stack):
        # What a holder killed for good leaves (its release never ran): an unreleased lease whose run is
        # over. The next run asks Airflow for that run's state (Task SDK) and takes the hour at once,
        # long before the lease's TTL.
        _, client, env, root = lease_stack
        hour = datetime(2026, 11, 19, 9, tzinfo=UTC)
        gen = write_input(root, hour, rows=1500, seed=5)
        dead = "dead_holder"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": dead, "logical_date": None, "conf": {"hour": "2026-11-19T10:00:00+00:00"}},
        )
        client.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{dead}", {"state": "failed"})
        wait_for_run(client, dead)  # of another hour; only its (terminal) state matters here
        lease = HourLease(root, DAG_ID, hour)
        left = lease.try_acquire(DAG_ID, dead, lambda d, r: "running", holder="killed-worker:1")
        assert left.acquired and not lease.current().released

        run_id = "after_the_crash"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        wait_for(
            lambda: task_instances(client, run_id).get("claim_hour", {}).get("state") == "success",
            120,
            "the run to take over the hour (not wait for the lease's 1 h TTL)",
        )
        assert wait_for_run(client, run_id, timeout=900) == "success", task_states(client, run_id)
        assert_every_store_holds_the_output_of(root, hour, gen, warehouse_of(env))
        assert [(r.run_id, r.released) for r in lease.history()] == [(dead, False), (run_id, True)]


class TestFencing:
    def test_a_run_whose_hour_was_taken_over_mid_job_publishes_nothing(self, lease_stack):
        _, client, _, root = lease_stack
        hour = datetime(2026, 11, 19, 11, tzinfo=UTC)
        write_input(root, hour, rows=60_000, seed=6)
        run_id = "overtaken"
        client.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": {"hour": hour.isoformat()}},
        )
        # Past the task's own lease check: its Spark driver runs.
        wait_for(lambda: spark_drivers(hour), 300, "the run's Spark job")
        # Another writer takes the hour over while the job runs (as after a TTL without renewal).
        lease = HourLease(root, DAG_ID, hour)
        assert lease.try_acquire(DAG_ID, "intruder", lambda d, r: "failed", holder="elsewhere:1").acquired

        ti = wait_for(
            lambda: (
                (t := task_instances(client, run_id)["ingest_customer_data"])["state"] in ("up_for_retry", "failed")
                and t
            ),
            300,
            "the Spark job to give up",
        )
        log = client.call(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/logs/{ti['try_number']}"
        )
        assert "lost the lease of hour 2026-11-19T11:00Z" in str(log)
        assert "intruder" in str(log)
        # A lost lease is not retried: the driver exits LEASE_LOST_EXIT and the task fails for good.
        assert (ti["state"], ti["try_number"]) == ("failed", 1)
        assert f"Error code is: {LEASE_LOST_EXIT}" in str(log) and "not retried" in str(log)
        for dataset in (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS):
            assert not lake.partition(root, dataset, hour).path.exists(), dataset  # nothing published
        client.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
        wait_for_run(client, run_id)
        assert lease.current().run_id == "intruder"  # the overtaken run's teardown did not free it
        assert not lease.current().released
