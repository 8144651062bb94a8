"""The pipeline's outputs as Airflow Assets, so downstream DAGs run on data, not on the clock.

Each producing task adds ``{"hour": <ISO start>}`` (or ``{"path": ...}``) to its asset event, so a
consumer knows which partition changed without guessing from times.

The URIs use a custom ``x-`` scheme on purpose: Airflow normalizes any other scheme through the
providers' asset handlers, which imports boto3 and the GCS client when the DAG file is parsed —
about 1.1 s of CPU in every task process (each one parses its DAG file first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset

if TYPE_CHECKING:
    from airflow.sdk import Context

#: One hour of ``enriched/customer_hourly`` published in the lake.
ENRICHED_CUSTOMER_HOURLY = Asset(
    name="customer_hourly_enriched", uri="x-tricloud://lake/enriched/customer_hourly", group="customer_enrichment"
)
#: The same hour (with its clean and reject partitions) verified in S3, GCS and Azure Blob.
REPLICATED_CUSTOMER_HOURLY = Asset(
    name="customer_hourly_replicated", uri="x-tricloud://replicas/customer_enrichment", group="customer_enrichment"
)
#: The Olympic mean-Age-per-Year result.
ATHLETE_MEAN_AGE = Asset(
    name="athletes_mean_age_by_year", uri="x-tricloud://lake/athletes/mean_age_by_year", group="athletes"
)
#: The daily rollup the report DAG rebuilds whenever an hour of that day is replicated.
CUSTOMER_DAILY_REPORT = Asset(
    name="customer_daily_report", uri="x-tricloud://lake/reports/customer_daily", group="customer_enrichment"
)


def describe_outlets(context: Context, **extra: str) -> None:
    """Attach ``extra`` (e.g. ``hour=...``) to the events of every asset the running task produces."""
    for asset in context["task"].outlets:
        context["outlet_events"][asset].extra = extra
