"""The hour lease on an object-store lake (include/lease_store.py): ``s3://`` on the S3 emulator (moto,
in-process) and ``gs://`` on the GCS emulator. Every test that is not about one store runs once per store
(``[s3]``, ``[gs]``, as tests/integration/test_lake_on_s3.py; the module's name predates ``gs://``).

The behaviour classes of tests/unit/test_lease.py (staleness, fencing, task attempts, history) run again
unchanged with the lease in the bucket; then the conditional write that decides a race for the next
generation, the Airflow side's client (the lake connection's, through the provider hook: ``S3Hook`` /
``GCSHook``) and the Spark driver's (the standard client settings: boto3's defaults / ``storage.Client()``
from ``STORAGE_EMULATOR_HOST``). Objects are listed with boto3 or google-cloud-storage here, independently.

gcp-storage-emulator ignores ``ifGenerationMatch`` (measured), so the lease's probe must refuse it as shipped
(``TestGcsEmulatorAsShipped``, on the stock emulator); every other ``[gs]`` test runs against the same
emulator given GCS's documented 412 for ``ifGenerationMatch=0`` (tests/support/gcs_preconditions.py, a change
to the emulator only). What only S3 shows: ``TestWhatTheStoreAnswers``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from include.lease import HourLease, LeaseLostError
from include.lease_store import GcsLeaseDir, LeaseStoreError, S3LeaseDir
from tests.support.gcs_preconditions import gcs_with_preconditions
from tests.support.lease import HOUR, Clock, states
from tests.support.moto_aws import CONN_ID, REGION, moto_aws
from tests.unit import test_lease as unit

PREFIX = "_leases/customer_enrichment/date=2026-11-24/hour=10/"


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gcs():
    """``STORAGE_EMULATOR_HOST`` of an emulator that honours ``ifGenerationMatch=0`` (restored after)."""
    with gcs_with_preconditions() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", endpoint)
        yield endpoint


@dataclass
class ObjectStore:
    """One store's side of the tests: its scheme, lease directory class, a raw client of its own (listing,
    reading, creating buckets independently of the lease), the Airflow side's client, and the variables
    that point the Airflow side's connection and a Spark driver's default client at the emulator."""

    scheme: str
    dir_class: type
    raw: object
    airflow_client: object
    airflow_env: dict[str, str] = field(default_factory=dict)
    driver_env: dict[str, str] = field(default_factory=dict)

    def create_bucket(self, name: str) -> None:
        if self.scheme == "s3":
            self.raw.create_bucket(Bucket=name)
        else:
            self.raw.create_bucket(name)

    def keys(self, bucket: str) -> list[str]:
        if self.scheme == "s3":
            return sorted(o["Key"] for o in self.raw.list_objects_v2(Bucket=bucket).get("Contents", []))
        return sorted(b.name for b in self.raw.list_blobs(bucket))

    def get(self, bucket: str, key: str) -> bytes:
        if self.scheme == "s3":
            return self.raw.get_object(Bucket=bucket, Key=key)["Body"].read()
        return self.raw.bucket(bucket).blob(key).download_as_bytes()


def s3_store(aws) -> ObjectStore:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    creds = {"login": "testing", "password": "testing"}
    lake_conn = {"conn_type": "aws", **creds, "extra": {"endpoint_url": aws.endpoint, "region_name": REGION}}
    return ObjectStore(
        scheme="s3",
        dir_class=S3LeaseDir,
        raw=aws.client("s3"),
        airflow_client=S3Hook(aws_conn_id=CONN_ID).get_conn(),
        airflow_env={"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(lake_conn)},
        driver_env={
            "AWS_ENDPOINT_URL": aws.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        },
    )


def gcs_store() -> ObjectStore:
    """On the module's ``gcs`` emulator (``STORAGE_EMULATOR_HOST`` is set while it runs): the Airflow side is the
    google provider's hook on the world's (anonymous) connection, the driver ``storage.Client()``."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.cloud import storage

    return ObjectStore(
        scheme="gs",
        dir_class=GcsLeaseDir,
        raw=storage.Client(),  # anonymous on STORAGE_EMULATOR_HOST
        airflow_client=GCSHook(gcp_conn_id="google_cloud_default").get_conn(),
    )


@pytest.fixture(scope="module", params=["s3", "gs"])
def store(request) -> ObjectStore:
    if request.param == "s3":
        return s3_store(request.getfixturevalue("aws"))
    request.getfixturevalue("gcs")
    return gcs_store()


@pytest.fixture
def bucket(store) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    store.create_bucket(name)
    return name


@pytest.fixture
def client(store):
    return store.airflow_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def root(store, bucket) -> str:
    return f"{store.scheme}://{bucket}/prod"


@pytest.fixture
def lease(root, client, clock) -> HourLease:
    return HourLease(root, "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock, client=client)


class TestStaleness(unit.TestStaleness):
    pass


class TestFencing(unit.TestFencing):
    pass


class TestAttempts(unit.TestAttempts):
    pass


class TestHistory(unit.TestHistory):
    pass


class TestAcquire:
    def test_a_free_hour_is_one_object_holding_the_record(self, store, bucket, root, lease):
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        assert claim.acquired and claim.record.generation == 1
        assert isinstance(lease.store, store.dir_class) and lease.path == f"{root}/{PREFIX.rstrip('/')}"
        assert store.keys(bucket) == [f"prod/{PREFIX}000001.json"]
        assert json.loads(store.get(bucket, f"prod/{PREFIX}000001.json"))["run_id"] == "run_a"

    def test_of_two_runs_racing_for_the_next_generation_the_later_write_is_refused(
        self, store, bucket, root, client, clock
    ):
        """Run B has read the lease (free) when run A creates generation 1: B's conditional write must fail."""
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
        assert store.keys(bucket) == [f"prod/{PREFIX}000001.json"]


class TestClients:
    def test_the_airflow_side_uses_the_lake_connection(self, store, bucket, root, monkeypatch):
        from tricloud.hour_lease import _lease

        for name, value in store.airflow_env.items():
            monkeypatch.setenv(name, value)
        lease = _lease(root, "customer_enrichment", HOUR)
        assert isinstance(lease.store, store.dir_class)
        assert lease.try_acquire("dag", "run_a", states(run_a="running")).acquired
        assert store.keys(bucket) == [f"prod/{PREFIX}000001.json"]

    def test_the_spark_driver_checks_with_the_standard_client_settings(self, store, root, lease, monkeypatch):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, "ingest_customer_data", 2)
        for name, value in store.driver_env.items():
            monkeypatch.setenv(name, value)
        driver = HourLease(root, "customer_enrichment", HOUR)  # no client: the store's default client
        assert driver.check(gen, "ingest_customer_data", 2).run_id == "run_a"
        with pytest.raises(LeaseLostError, match="older attempt"):
            driver.check(gen, "ingest_customer_data", 1)


class TestWhatTheStoreAnswers:
    """The store's side, through botocore's own event hooks on a fresh client (our code unchanged): an
    S3-compatible store that ignores ``If-None-Match``, and a PUT that lands but whose reply is lost."""

    @pytest.fixture
    def store(self, aws) -> ObjectStore:
        return s3_store(aws)

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

    def test_a_store_ignoring_conditional_writes_is_refused_before_any_claim(self, aws, store, bucket, clock):
        """Found in review: such a store let two runs each write generation 1 and both pass the check."""
        lax = self.fresh_client(aws)

        def ignore_condition(request, **_):
            if "If-None-Match" in request.headers:
                del request.headers["If-None-Match"]

        lax.meta.events.register("before-sign.s3.PutObject", ignore_condition)
        lease = HourLease(f"s3://{bucket}/prod", "customer_enrichment", HOUR, clock=clock, client=lax)
        with pytest.raises(LeaseStoreError, match=r"does not honour conditional writes.*Amazon S3.*local LAKE_ROOT"):
            lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert store.keys(bucket) == []  # no record, and the probe is gone

    def test_a_put_whose_reply_was_lost_is_still_ours(self, aws, store, bucket, clock):
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
        assert store.keys(bucket) == [f"prod/{PREFIX}000001.json"]


class TestGcsEmulatorAsShipped:
    def test_a_store_ignoring_the_precondition_is_refused_before_any_claim(self, clock):
        """gcp-storage-emulator writes a second ``ifGenerationMatch=0`` upload: two runs could each write
        generation 1 and both pass the fencing check. The probe refuses the store first."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        with gcs_with_preconditions(preconditions=False) as endpoint:
            lax = storage.Client(
                project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
            )
            name = f"lake-{uuid.uuid4().hex[:12]}"
            lax.create_bucket(name)
            lease = HourLease(f"gs://{name}/prod", "customer_enrichment", HOUR, clock=clock, client=lax)
            with pytest.raises(LeaseStoreError, match=r"does not honour the ifGenerationMatch=0 precondition"):
                lease.try_acquire("dag", "run_a", states(run_a="running"))
            assert [b.name for b in lax.list_blobs(name)] == []  # no record, and the probe is gone
