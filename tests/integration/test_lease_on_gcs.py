"""The hour lease on a ``gs://`` lake (include/lease_store.py ``GcsLeaseDir``) against the GCS emulator.

gcp-storage-emulator ignores ``ifGenerationMatch`` (measured), so the lease's probe must refuse it as shipped:
``TestGcsEmulatorAsShipped`` runs against the stock emulator. Every other class runs against the same
emulator given GCS's documented 412 for ``ifGenerationMatch=0`` (tests/support/gcs_preconditions.py, a
change to the emulator only): the behaviour classes of tests/unit/test_lease.py unchanged, the race for the
next generation, and the clients of the Airflow side (the google provider's ``GCSHook``) and of a Spark
driver (``storage.Client()`` from ``STORAGE_EMULATOR_HOST``). Objects are listed with google-cloud-storage.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from include.lease import HourLease, LeaseLostError
from include.lease_store import GcsLeaseDir, LeaseStoreError
from tests.support.gcs_preconditions import gcs_with_preconditions
from tests.unit import test_lease as unit
from tests.unit.test_lease import HOUR, states

PREFIX = "_leases/customer_enrichment/date=2026-11-24/hour=10/"


@pytest.fixture(scope="module")
def gcs():
    """``STORAGE_EMULATOR_HOST`` of an emulator that honours ``ifGenerationMatch=0`` (restored after)."""
    with gcs_with_preconditions() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", endpoint)
        yield endpoint


def raw():
    from google.cloud import storage

    return storage.Client()  # anonymous on STORAGE_EMULATOR_HOST


@pytest.fixture
def bucket(gcs) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    raw().create_bucket(name)
    return name


@pytest.fixture
def client(gcs):
    """The Airflow side's client: the google provider's hook on the world's (anonymous) connection."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    return GCSHook(gcp_conn_id="google_cloud_default").get_conn()


@pytest.fixture
def clock() -> unit.Clock:
    return unit.Clock()


@pytest.fixture
def lease(bucket, client, clock) -> HourLease:
    return HourLease(
        f"gs://{bucket}/prod", "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock, client=client
    )


def keys(bucket: str) -> list[str]:
    return sorted(b.name for b in raw().list_blobs(bucket))


class TestStalenessOnGcs(unit.TestStaleness):
    pass


class TestFencingOnGcs(unit.TestFencing):
    pass


class TestAttemptsOnGcs(unit.TestAttempts):
    pass


class TestHistoryOnGcs(unit.TestHistory):
    pass


class TestAcquireOnGcs:
    def test_a_free_hour_is_one_object_holding_the_record(self, bucket, lease):
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        assert claim.acquired and claim.record.generation == 1
        assert isinstance(lease.store, GcsLeaseDir) and lease.path == f"gs://{bucket}/prod/{PREFIX.rstrip('/')}"
        assert keys(bucket) == [f"prod/{PREFIX}000001.json"]
        body = raw().bucket(bucket).blob(f"prod/{PREFIX}000001.json").download_as_bytes()
        assert json.loads(body)["run_id"] == "run_a"

    def test_of_two_runs_racing_for_the_next_generation_the_later_upload_is_refused(self, bucket, client, clock):
        """Run B has read the lease (free) when run A creates generation 1: B's conditional upload must fail."""
        root = f"gs://{bucket}/prod"
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
        assert keys(bucket) == [f"prod/{PREFIX}000001.json"]


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


class TestClients:
    def test_the_airflow_side_uses_the_lake_connection(self, bucket):
        from tricloud.hour_lease import _lease

        lease = _lease(f"gs://{bucket}/prod", "customer_enrichment", HOUR)
        assert isinstance(lease.store, GcsLeaseDir)
        assert lease.try_acquire("dag", "run_a", states(run_a="running")).acquired
        assert keys(bucket) == [f"prod/{PREFIX}000001.json"]

    def test_the_spark_driver_checks_with_the_standard_client_settings(self, bucket, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, "ingest_customer_data", 2)
        driver = HourLease(f"gs://{bucket}/prod", "customer_enrichment", HOUR)  # no client: storage.Client()
        assert driver.check(gen, "ingest_customer_data", 2).run_id == "run_a"
        with pytest.raises(LeaseLostError, match="older attempt"):
            driver.check(gen, "ingest_customer_data", 1)
