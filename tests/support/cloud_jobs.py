"""The Spark job the cloud backend tests submit: one hour of ``ingest_customers`` with its result in the lake.

Shared by tests/integration/test_aws_backends.py and tests/integration/dataproc/ (EMR, EMR Serverless,
Dataproc, Dataproc Serverless): each backend stages the same application and reads its metrics back.
"""

from __future__ import annotations

from tricloud.cluster import SparkJob, job_key
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
