"""The hour lease on a local-directory lake: acquire, contention, staleness, fencing, release."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.lease import HourLease, LeaseLostError

HOUR = "2026-11-24T10:00:00+00:00"
T0 = datetime(2026, 11, 24, 11, 5, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def states(**by_run: str):
    """holder_state answering from a table; a run not in it is unknown to Airflow (raises, like a 404)."""

    def holder_state(dag_id: str, run_id: str) -> str | None:
        if run_id not in by_run:
            raise LookupError(f"no run {run_id}")
        return by_run[run_id]

    return holder_state


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lease(tmp_path, clock) -> HourLease:
    return HourLease(tmp_path, "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock)


class TestAcquire:
    def test_a_free_hour_is_taken_with_generation_1(self, lease):
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        assert claim.acquired and claim.record.generation == 1
        assert lease.current() == claim.record
        assert lease.path.parts[-4:] == ("_leases", "customer_enrichment", "date=2026-11-24", "hour=10")
        assert [p.name for p in lease.path.iterdir()] == ["000001.json"]  # no temp file left

    def test_a_held_hour_is_refused_naming_the_holder(self, lease):
        lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        claim = lease.try_acquire("dag", "run_b", states(run_a="running", run_b="running"))
        assert not claim.acquired
        assert claim.record.run_id == "run_a"
        assert "run_a" in claim.reason and "w1:42" in claim.reason
        assert lease.generations() == [1]

    def test_the_same_run_reclaims_with_a_new_generation(self, lease):
        # A cleared run re-claims; its older attempt is fenced out by the new generation.
        first = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        again = lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert again.acquired and again.record.generation == 2
        with pytest.raises(LeaseLostError):
            lease.check(first.generation)

    def test_the_same_run_id_of_another_dag_is_another_holder(self, lease):
        lease.try_acquire("dag_one", "manual__1", states(**{"manual__1": "running"}))
        assert not lease.try_acquire("dag_two", "manual__1", states(**{"manual__1": "running"})).acquired


class TestStaleness:
    def test_released_lease_is_free(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        assert lease.release(gen)
        claim = lease.try_acquire("dag", "run_b", states(run_a="running", run_b="running"))
        assert claim.acquired and claim.record.generation == 2
        assert "released" in claim.reason

    @pytest.mark.parametrize("terminal", ["failed", "success"])
    def test_lease_of_a_finished_run_is_free_at_once(self, lease, terminal):
        lease.try_acquire("dag", "run_a", states(run_a="running"))
        claim = lease.try_acquire("dag", "run_b", states(run_a=terminal, run_b="running"))
        assert claim.acquired and claim.record.run_id == "run_b"
        assert terminal in claim.reason

    def test_lease_not_renewed_for_a_ttl_is_free(self, lease, clock):
        lease.try_acquire("dag", "run_a", states(run_a="running"))
        clock.now = T0 + timedelta(minutes=29)
        assert not lease.try_acquire("dag", "run_b", states(run_a="running")).acquired
        clock.now = T0 + timedelta(minutes=31)
        claim = lease.try_acquire("dag", "run_b", states(run_a="running"))
        assert claim.acquired and "TTL" in claim.reason

    def test_renewal_keeps_a_live_lease(self, lease, clock):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        clock.now = T0 + timedelta(minutes=25)
        lease.renew(gen)
        clock.now = T0 + timedelta(minutes=50)  # 50 min after the claim, 25 after the renewal
        assert not lease.try_acquire("dag", "run_b", states(run_a="running")).acquired

    def test_holder_unknown_to_airflow_waits_for_the_ttl(self, lease, clock):
        # A deleted run (or one of another deployment sharing the lake): not presumed dead at once.
        lease.try_acquire("dag", "gone", states(gone="running"))
        assert not lease.try_acquire("dag", "run_b", states()).acquired
        clock.now = T0 + timedelta(minutes=31)
        assert lease.try_acquire("dag", "run_b", states()).acquired


class TestFencing:
    def test_holder_passes_the_check(self, lease):
        rec = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        assert lease.check(rec.generation) == rec

    def test_holder_overtaken_after_a_ttl_is_refused_naming_the_new_holder(self, lease, clock):
        old = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        clock.now = T0 + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"), holder="w2:7")
        with pytest.raises(LeaseLostError, match="run_b.*w2:7"):
            lease.check(old.generation)
        with pytest.raises(LeaseLostError):
            lease.renew(old.generation)
        assert not lease.release(old.generation)  # the old holder cannot free the new one's hour
        assert lease.current().run_id == "run_b" and not lease.current().released

    def test_released_generation_no_longer_writes(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.release(gen)
        with pytest.raises(LeaseLostError, match="released"):
            lease.check(gen)

    def test_never_claimed_hour_refuses_every_generation(self, lease):
        with pytest.raises(LeaseLostError):
            lease.check(1)

    def test_lost_lease_names_the_fix(self, lease, clock):
        old = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        clock.now = T0 + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"))
        with pytest.raises(LeaseLostError, match="clear this run after 'run_b' finishes to re-process the hour"):
            lease.check(old.generation)

    def test_an_older_attempt_of_the_same_run_is_told_so_not_named_a_foreign_holder(self, lease):
        first = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        lease.try_acquire("dag", "run_a", states(run_a="running"))  # a clear re-ran claim_hour
        with pytest.raises(LeaseLostError, match="an older attempt of this run") as err:
            lease.check(first.generation)
        assert "finishes" not in str(err.value)


class TestAttempts:
    """A killed task's orphaned process and its retry share one generation: the lower try is refused."""

    def test_a_lower_try_of_the_same_task_is_refused_once_a_later_try_renewed(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=1)
        assert lease.check(gen, "ingest", 1).generation == gen  # no later try yet
        lease.renew(gen, task_id="ingest", try_number=2)  # the retry
        with pytest.raises(LeaseLostError, match="try 1 of task 'ingest' is an older attempt of this run"):
            lease.check(gen, "ingest", 1)  # the orphaned driver of try 1, just before it publishes
        with pytest.raises(LeaseLostError):
            lease.renew(gen, task_id="ingest", try_number=1)
        assert lease.check(gen, "ingest", 2).generation == gen
        assert lease.attempts(gen) == {"ingest": 2}

    def test_a_retry_that_adopts_the_earlier_try_lets_its_job_publish(self, lease):
        """A retry re-attaching to try 1's still-running Spark job (issue 15): that job writes on, for try 2."""
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=1)
        lease.renew(gen, task_id="ingest", try_number=2, adopts=1)
        assert lease.check(gen, "ingest", 1).generation == gen  # the adopted job may publish
        assert lease.check(gen, "ingest", 2).generation == gen
        assert lease.attempts(gen) == {"ingest": 2}  # the marker is no attempt of its own
        lease.renew(gen, task_id="ingest", try_number=3)  # a try that adopts nothing more
        assert lease.check(gen, "ingest", 1).generation == gen  # (still adopted: try 3 starts a fresh job)
        with pytest.raises(LeaseLostError, match="try 2 of task 'ingest' is an older attempt"):
            lease.check(gen, "ingest", 2)  # only the adopted try is let through, not every lower one

    def test_tries_of_other_tasks_do_not_fence_each_other(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="replicate.to_s3", try_number=3)
        lease.renew(gen, task_id="replicate.to_gcs", try_number=1)
        assert lease.attempts(gen) == {"replicate.to_s3": 3, "replicate.to_gcs": 1}
        assert lease.check(gen, "replicate.to_gcs", 1).generation == gen

    def test_a_check_without_attempt_ignores_tries(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=2)
        assert lease.check(gen).generation == gen


class TestFilesystem:
    def test_a_lake_without_hard_links_fails_naming_what_to_set(self, lease, monkeypatch):
        def no_links(src, dst):  # what vfat, SMB or some FUSE mounts answer
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
        with pytest.raises(OSError, match=r"LAKE_ROOT must be on a filesystem with hard links \(local disk, NFS\)"):
            lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert lease.generations() == []


class TestHistory:
    def test_old_generations_are_pruned_the_last_five_kept(self, lease):
        for i in range(8):
            lease.try_acquire("dag", f"run_{i}", states(**{f"run_{i - 1}": "success"}))
        assert lease.generations() == [4, 5, 6, 7, 8]
        assert [r.run_id for r in lease.history()] == [f"run_{i}" for i in range(3, 8)]


def slow_clock() -> datetime:
    # Read between looking at the lease and creating the next generation: a wide window for the race.
    time.sleep(0.2)
    return datetime.now(UTC)


def _contend(args) -> bool:
    root, run_id, start = args
    start.wait()
    lease = HourLease(root, "customer_enrichment", HOUR, clock=slow_clock)
    return lease.try_acquire("dag", run_id, lambda d, r: "running").acquired


class TestRace:
    def test_of_many_processes_claiming_at_once_exactly_one_wins(self, tmp_path):
        ctx = multiprocessing.get_context("spawn")  # fork after threads/a JVM can deadlock
        with ctx.Manager() as manager:
            start = manager.Barrier(8)
            with ctx.Pool(8) as pool:
                won = pool.map(_contend, [(tmp_path, f"run_{i}", start) for i in range(8)])
        assert sum(won) == 1
        lease = HourLease(tmp_path, "customer_enrichment", HOUR)
        assert lease.generations() == [1]
        assert lease.current().run_id == f"run_{won.index(True)}"

    def test_of_many_processes_taking_over_a_stale_lease_exactly_one_wins(self, tmp_path):
        HourLease(tmp_path, "customer_enrichment", HOUR).try_acquire("dag", "dead", lambda d, r: "running")

        ctx = multiprocessing.get_context("spawn")  # fork after threads/a JVM can deadlock
        with ctx.Manager() as manager:
            start = manager.Barrier(6)
            with ctx.Pool(6) as pool:
                won = pool.map(_take_over, [(tmp_path, f"run_{i}", start) for i in range(6)])
        assert sum(won) == 1
        assert HourLease(tmp_path, "customer_enrichment", HOUR).generations() == [1, 2]


def _take_over(args) -> bool:
    root, run_id, start = args
    start.wait()
    states = {"dead": "failed"}
    return (
        HourLease(root, "customer_enrichment", HOUR, clock=slow_clock)
        .try_acquire("dag", run_id, lambda d, r: states.get(r, "running"))
        .acquired
    )


class StubTI:
    """The three things the lease hooks read from Airflow's task instance."""

    def __init__(self, claim: dict | None, task_id: str = "ingest_customer_data", try_number: int = 1) -> None:
        self.claim, self.task_id, self.try_number = claim, task_id, try_number

    def xcom_pull(self, task_ids: str):
        assert task_ids == "claim_hour"
        return self.claim


class TestAirflowHooks:
    """``fence`` (writers) and ``keep_alive`` (start/stop_cluster) of tricloud.hour_lease."""

    @pytest.fixture
    def claim(self, lease, tmp_path) -> dict:
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        return {"hour": HOUR, "pipeline": "customer_enrichment", "lake_root": str(tmp_path), "generation": gen}

    def test_fence_records_the_attempt_and_a_lower_try_fails_without_retry(self, lease, claim):
        from airflow.sdk.exceptions import AirflowFailException

        from tricloud.hour_lease import fence

        fence({"ti": StubTI(claim, try_number=2)})
        assert lease.attempts(claim["generation"]) == {"ingest_customer_data": 2}
        with pytest.raises(AirflowFailException, match="older attempt") as err:
            fence({"ti": StubTI(claim, try_number=1)})
        assert isinstance(err.value.__cause__, LeaseLostError)

    def test_a_retry_holding_an_earlier_trys_job_adopts_it(self, lease, claim):
        """The retry of a SparkJobOperator task re-attaches to try 1's job: that job may still publish."""
        from tricloud.hour_lease import fence
        from tricloud.operators.spark import JOB_HANDLE_KEY

        handle = {"backend": "local", "job_id": "1", "key": "k", "result_uri": "r", "details": {"try_number": 1}}
        fence({"ti": StubTI(claim, try_number=1)})
        fence({"ti": StubTI(claim, try_number=2), "task_state_store": {JOB_HANDLE_KEY: handle}})
        assert lease.check(claim["generation"], "ingest_customer_data", 1).generation == claim["generation"]
        # A task without a stored job (or whose job is its own try's) adopts nothing.
        fence({"ti": StubTI(claim, try_number=3), "task_state_store": {}})
        fence({"ti": StubTI(claim, task_id="other", try_number=2), "task_state_store": {JOB_HANDLE_KEY: None}})
        with pytest.raises(LeaseLostError, match="older attempt"):
            lease.check(claim["generation"], "other", 1)

    def test_fence_of_a_lost_lease_fails_without_retry_naming_the_fix(self, lease, claim, clock):
        from airflow.sdk.exceptions import AirflowFailException

        from tricloud.hour_lease import fence

        clock.now = T0 + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"))
        with pytest.raises(AirflowFailException, match="clear this run after 'run_b' finishes"):
            fence({"ti": StubTI(claim)})

    def test_the_claim_sensor_waits_twice_its_ttl_by_default(self):
        from tricloud.hour_lease import ClaimHourSensor

        sensor = ClaimHourSensor(task_id="claim_hour", hour=HOUR, lake_root="lake", ttl=timedelta(minutes=10))
        assert sensor.timeout == 1200
        assert ClaimHourSensor(task_id="c", hour=HOUR, lake_root="lake", timeout=5).timeout == 5

    def test_keep_alive_renews_a_held_lease_and_never_fails(self, lease, claim, clock):
        from tricloud.hour_lease import keep_alive

        keep_alive({"ti": StubTI(claim, task_id="start_cluster")})
        assert lease.current().renewed_at > T0  # renewed by the hook's real clock, now
        clock.now = datetime.now(UTC) + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"))
        keep_alive({"ti": StubTI(claim, task_id="stop_cluster")})  # lost: logs, does not raise
        keep_alive({"ti": StubTI(None, task_id="stop_cluster")})  # no claim: logs, does not raise
        assert lease.current().run_id == "run_b"

    @pytest.mark.parametrize(
        ("scheme", "status", "body", "named"),
        [
            ("s3", 503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>", "SlowDown"),
            ("s3", 403, b"<Error><Code>AccessDenied</Code><Message>denied</Message></Error>", "AccessDenied"),
            (
                "gs",
                403,
                b'{"error": {"code": 403, "message": "denied", "errors": [{"message": "denied"}]}}',
                "Forbidden",
            ),
        ],
        ids=["s3-slowdown", "s3-access-denied", "gcs-forbidden"],
    )
    def test_keep_alive_logs_an_object_store_error_and_does_not_fail(
        self, monkeypatch, caplog, scheme, status, body, named
    ):
        """The lake's store answers the renewal with an error (a real client error from the provider hook's
        client against a 127.0.0.1 server): stop_cluster must still run, so keep_alive logs it."""
        import json
        import logging

        from tests.unit.test_retry_classes import cloud_reply
        from tricloud.hour_lease import keep_alive

        kind = "application/xml" if scheme == "s3" else "application/json"
        claim = {"hour": HOUR, "pipeline": "customer_enrichment", "lake_root": f"{scheme}://tricloud-lake/lake"}
        with cloud_reply(status, body, {"Content-Type": kind}) as url:
            if scheme == "s3":
                extra = {
                    "endpoint_url": url,
                    "region_name": "us-east-1",
                    "config_kwargs": {"retries": {"max_attempts": 1}},
                }
                conn = {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",  # pragma: allowlist secret
                    "extra": extra,
                }  # pragma: allowlist secret
                monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
            else:
                monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
                conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "tricloud"}}
                monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
            with caplog.at_level(logging.WARNING, logger="tricloud.hour_lease"):
                keep_alive({"ti": StubTI({**claim, "generation": 1}, task_id="stop_cluster")})
        (record,) = [r for r in caplog.records if "Lease not renewed" in r.getMessage()]
        assert named in record.getMessage()

    def test_keep_alive_lets_a_bug_show(self):
        """Only store errors are swallowed: a claim without its generation is a bug, not the store."""
        from tricloud.hour_lease import keep_alive

        with pytest.raises(KeyError):
            keep_alive({"ti": StubTI({"hour": HOUR, "pipeline": "p", "lake_root": "/nowhere"}, task_id="stop_cluster")})


class TestSparkJobs:
    """The driver's check gets the task attempt, and a lost lease is an exit code the operator does not retry."""

    def test_the_driver_refuses_a_lower_try_of_its_task(self, lease, tmp_path):
        from include.jobs import common

        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest_customer_data", try_number=2)
        argv = ["--lake-root", str(tmp_path), "--start", HOUR, "--end", "2026-11-24T11:00:00+00:00"]
        argv += ["--lease-pipeline", "customer_enrichment", "--lease-generation", str(gen)]
        orphan = common.hour_args("job", [*argv, "--lease-attempt", "ingest_customer_data:1"])
        with pytest.raises(LeaseLostError, match="older attempt"):
            common.check_lease(orphan, str(tmp_path), orphan.start)
        retry = common.hour_args("job", [*argv, "--lease-attempt", "ingest_customer_data:2"])
        common.check_lease(retry, str(tmp_path), retry.start)

    def test_a_lost_lease_exits_with_the_code_the_operator_fails_without_retry(self):
        from airflow.sdk.exceptions import AirflowException

        from include.jobs import common
        from include.lease import LEASE_LOST_EXIT
        from tricloud.operators.spark import lease_lost

        def main(argv):
            raise LeaseLostError("lost")

        with pytest.raises(SystemExit) as exit_:
            common.run(main, [])
        assert exit_.value.code == LEASE_LOST_EXIT
        # The provider's SparkSubmitHook message for that exit code, and for an ordinary failure:
        assert lease_lost(AirflowException(f"Cannot execute: spark-submit x.py. Error code is: {LEASE_LOST_EXIT}."))
        assert lease_lost(None, exit_code=LEASE_LOST_EXIT) and not lease_lost(None, exit_code=1)  # a backend's code
        assert not lease_lost(AirflowException("Cannot execute: spark-submit x.py. Error code is: 1."))


class TestDemoReport:
    """``make demo`` names the run that wrote the hour: the lease's top generation, checked against the watched run."""

    def test_the_watched_run_that_holds_the_hour_is_named(self, lease, tmp_path):
        from stack.__main__ import processed_by

        lease.try_acquire("customer_enrichment", "scheduled__10", states(scheduled__10="running"))
        line = processed_by({"LAKE_ROOT": str(tmp_path)}, lease.hour, "scheduled__10")
        assert line.startswith("Hour     processed by run scheduled__10 (lease generation 1)")
        assert "not by the watched run" not in line

    def test_a_run_that_claimed_after_the_watched_one_is_named_as_the_writer(self, lease, tmp_path):
        from stack.__main__ import processed_by

        gen = lease.try_acquire("customer_enrichment", "demo__10", states(demo__10="running")).record.generation
        lease.release(gen)
        lease.try_acquire("customer_enrichment", "manual__x", states(demo__10="success", manual__x="running"))
        line = processed_by({"LAKE_ROOT": str(tmp_path)}, lease.hour, "demo__10")
        assert "processed by run manual__x (lease generation 2; earlier runs of this hour: demo__10)" in line
        assert "not by the watched run demo__10" in line
