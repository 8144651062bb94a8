"""Where the hour lease is used: the Airflow task hooks of ``tricloud.hour_lease`` (``fence``, ``keep_alive``,
the claim sensor), the Spark driver's check and its exit code, and ``make demo``'s report of the run that wrote
the hour. The lease itself: tests/unit/test_lease.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.lease import LeaseLostError
from tests.support.lease import HOUR, T0, states


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

        from tests.support.cloud_errors import cloud_reply
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
