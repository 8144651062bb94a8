"""The Spark job the cloud backend tests submit: one hour of ``ingest_customers`` with its result in the lake.

Shared by tests/integration/test_aws_backends.py and tests/integration/dataproc/ (EMR, EMR Serverless,
Dataproc, Dataproc Serverless): each backend stages the same application and reads its metrics back, and
keeps the same one-job-per-key contract (:func:`assert_one_job_per_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tricloud.cluster import JobHandle, SparkJob, job_key
from tricloud.cluster.code_bundle import project_root

#: The application every cloud backend test stages: a real job file of the project.
APP = str(project_root() / "include" / "jobs" / "ingest_customers.py")
#: The hour the job is for (UTC), as its ``--hour`` argument and in its run id.
HOUR = "2026-11-24T10:00:00+00:00"


def ingest_customers_job(lake: str, try_number: int = 1) -> SparkJob:
    """Try ``try_number`` of ``customer_enrichment``'s ``ingest_customers`` task for :data:`HOUR`.

    :param lake: the lake root (``s3://…`` / ``gs://…``); the job's metrics go to
        ``<lake>/_jobs/<key>/metrics.json`` and the driver gets ``LAKE_ROOT=<lake>``.
    :returns: the job; its key (from :func:`tricloud.cluster.job_key`) differs per try, so a retry is a new job.
    """
    key = job_key("customer_enrichment", "ingest_customers", f"scheduled__{HOUR}", try_number=try_number)
    return SparkJob(
        key=key,
        name="ingest_customers",
        application=APP,
        args=("--hour", HOUR),
        result_uri=f"{lake}/_jobs/{key}/metrics.json",
        conf={"spark.sql.session.timeZone": "UTC"},
        env={"LAKE_ROOT": lake},
    )


def assert_one_job_per_key(
    new_backend: Callable[[], Any],
    lake: str,
    succeed: Callable[[Any, JobHandle], None],
    jobs_at_endpoint: Callable[[Any, str, str], int],
    start_timeout: float,
) -> tuple[JobHandle, JobHandle]:
    """The contract every cloud backend keeps (docs/reliability.md A3, D4): the same job key submitted again
    -- a retry in another worker process, and again after the job succeeded -- returns the first job's handle
    and makes no second job at the endpoint; the next try (a new key) is a new job.

    :param new_backend: a fresh backend object, as another worker process would build it.
    :param lake: the lake root of the submitted :func:`ingest_customers_job`.
    :param succeed: ends ``(backend, handle)``'s job SUCCEEDED at the endpoint, acting as the cloud.
    :param jobs_at_endpoint: how many jobs ``(backend, cluster_id, key)`` the endpoint holds, counted there.
    :param start_timeout: the backend's ``start`` timeout, in seconds.
    :returns: the first try's handle and the next try's, for checks of the backend's own.
    :raises AssertionError: the backend broke the contract.
    """
    backend = new_backend()
    info = backend.start(timeout=start_timeout)
    job = ingest_customers_job(lake)
    first = backend.submit(job, info.cluster_id)
    again = new_backend().submit(job, info.cluster_id)  # a retry in another worker process
    assert again.job_id == first.job_id
    succeed(backend, first)
    assert new_backend().submit(job, info.cluster_id).job_id == first.job_id
    assert jobs_at_endpoint(backend, info.cluster_id, job.key) == 1
    other = backend.submit(ingest_customers_job(lake, try_number=2), info.cluster_id)  # the next try: a new job
    assert other.job_id != first.job_id
    return first, other
