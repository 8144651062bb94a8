"""The hour lease on an ``s3://`` lake (include/lease_store.py) against the S3 emulator (moto, in-process).

The behaviour classes of tests/unit/test_lease.py (staleness, fencing, task attempts, history) run again
unchanged with the lease on S3; then what only S3 shows: the conditional PUT that decides a race for the
next generation, the Airflow side's client (the lake connection's, through the provider hook) and the
Spark driver's (standard client settings). Objects are listed with boto3 here, independently.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from include.lease import HourLease, LeaseLostError
from include.lease_store import LeaseStoreError, S3LeaseDir
from tests.support.moto_aws import CONN_ID, REGION, moto_aws
from tests.unit import test_lease as unit
from tests.unit.test_lease import HOUR, states

PREFIX = "_leases/customer_enrichment/date=2026-11-24/hour=10/"


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture
def bucket(aws) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    aws.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def client(aws):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=CONN_ID).get_conn()


@pytest.fixture
def clock() -> unit.Clock:
    return unit.Clock()


@pytest.fixture
def lease(bucket, client, clock) -> HourLease:
    return HourLease(
        f"s3://{bucket}/prod", "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock, client=client
    )


def keys(aws, bucket: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


class TestStalenessOnS3(unit.TestStaleness):
    pass


class TestFencingOnS3(unit.TestFencing):
    pass


class TestAttemptsOnS3(unit.TestAttempts):
    pass


class TestHistoryOnS3(unit.TestHistory):
    pass


class TestAcquireOnS3:
    def test_a_free_hour_is_one_object_holding_the_record(self, aws, bucket, lease):
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        assert claim.acquired and claim.record.generation == 1
        assert isinstance(lease.store, S3LeaseDir) and lease.path == f"s3://{bucket}/prod/{PREFIX.rstrip('/')}"
        assert keys(aws, bucket) == [f"prod/{PREFIX}000001.json"]
        body = aws.client("s3").get_object(Bucket=bucket, Key=f"prod/{PREFIX}000001.json")["Body"].read()
        assert json.loads(body)["run_id"] == "run_a"

    def test_of_two_runs_racing_for_the_next_generation_the_later_put_is_refused(self, aws, bucket, client, clock):
        """Run B has read the lease (free) when run A creates generation 1: B's conditional PUT must fail."""
        root = f"s3://{bucket}/prod"
        run_a = HourLease(root, "customer_enrichment", HOUR, clock=clock, client=client)
        won_by_a = []

        def clock_of_b():  # called by B between reading the lease and creating the generation
            if not won_by_a:
                won_by_a.append(run_a.try_acquire("dag", "run_a", states(run_a="running")).acquired)
            return clock()

        run_b = HourLease(root, "customer_enrichment", HOUR, clock=clock_of_b, client=client)
        claim_b = run_b.try_acquire("dag", "run_b", states(run_b="running"))

        assert won_by_a == [True]
        assert not claim_b.acquired and "taken a moment ago" in claim_b.reason
        assert run_b.current().run_id == "run_a"  # A's record was not overwritten
        assert keys(aws, bucket) == [f"prod/{PREFIX}000001.json"]


class TestWhatTheStoreAnswers:
    """The store's side, through botocore's own event hooks on a fresh client (our code unchanged): an
    S3-compatible store that ignores ``If-None-Match``, and a PUT that lands but whose reply is lost."""

    @staticmethod
    def fresh_client(aws):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=aws.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def test_a_store_ignoring_conditional_writes_is_refused_before_any_claim(self, aws, bucket, clock):
        """Found in review: such a store let two runs each write generation 1 and both pass the check."""
        lax = self.fresh_client(aws)

        def ignore_condition(request, **_):
            if "If-None-Match" in request.headers:
                del request.headers["If-None-Match"]

        lax.meta.events.register("before-sign.s3.PutObject", ignore_condition)
        lease = HourLease(f"s3://{bucket}/prod", "customer_enrichment", HOUR, clock=clock, client=lax)
        with pytest.raises(LeaseStoreError, match=r"does not honour conditional writes.*Amazon S3.*local LAKE_ROOT"):
            lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert keys(aws, bucket) == []  # no record, and the probe is gone

    def test_a_put_whose_reply_was_lost_is_still_ours(self, aws, bucket, clock):
        """The first PUT reaches the store but its reply is lost (a read timeout); botocore retries it and
        the retry meets our own object: 412. The claim must still be ours, not "taken by run_a"."""
        import botocore.exceptions
        import requests

        sent = []

        def land_then_lose_the_reply(request, **_):
            if not sent and request.url.split("?")[0].endswith("/000001.json"):
                sent.append(requests.put(request.url, data=request.body, headers=dict(request.headers), timeout=10))
                raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)

        flaky = self.fresh_client(aws)
        flaky.meta.events.register("before-send.s3.PutObject", land_then_lose_the_reply)
        lease = HourLease(f"s3://{bucket}/prod", "customer_enrichment", HOUR, clock=clock, client=flaky)
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert sent and sent[0].status_code == 200  # it landed
        assert claim.acquired and claim.record.run_id == "run_a", claim.reason
        assert keys(aws, bucket) == [f"prod/{PREFIX}000001.json"]


class TestClients:
    def test_the_airflow_side_uses_the_lake_connection(self, aws, bucket, monkeypatch):
        from tricloud.hour_lease import _lease

        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": aws.endpoint, "region_name": REGION},
                }
            ),
        )
        lease = _lease(f"s3://{bucket}/prod", "customer_enrichment", HOUR)
        assert lease.try_acquire("dag", "run_a", states(run_a="running")).acquired
        assert keys(aws, bucket) == [f"prod/{PREFIX}000001.json"]

    def test_the_spark_driver_checks_with_the_standard_client_settings(self, aws, bucket, lease, monkeypatch):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, "ingest_customer_data", 2)
        for name, value in {
            "AWS_ENDPOINT_URL": aws.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        driver = HourLease(f"s3://{bucket}/prod", "customer_enrichment", HOUR)  # no client: boto3's default
        assert driver.check(gen, "ingest_customer_data", 2).run_id == "run_a"
        with pytest.raises(LeaseLostError, match="older attempt"):
            driver.check(gen, "ingest_customer_data", 1)
