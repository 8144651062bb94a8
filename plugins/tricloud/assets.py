"""The pipeline's outputs as Airflow Assets, so downstream DAGs run on data, not on the clock.

Each producing task adds ``{"hour": <ISO start>}`` (or ``{"path": ...}``) to its asset event, so a
consumer knows which partition changed without guessing from times.

The two hourly assets are *partitioned* (Airflow 3.3): an event of an hour carries the partition key
``YYYY-MM-DDTHH:MM:SS`` (the hour's UTC start, the input format of the SDK's temporal mappers), and
the daily report is scheduled on the 24 keys of a day (:func:`daily_report_schedule`).

The URIs use a custom ``x-`` scheme on purpose: Airflow normalizes any other scheme through the
providers' asset handlers, which imports boto3 and the GCS client when the DAG file is parsed —
about 1.1 s of CPU in every task process (each one parses its DAG file first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.sdk import (
    Asset,
    DayWindow,
    MinimumCount,
    PartitionedAssetTimetable,
    RollupMapper,
    StartOfDayMapper,
    WaitForAll,
)

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
#: An hour replicated again after its day's report was built (a re-processed or late hour): the
#: report of that day is rebuilt. Emitted by ``customer_enrichment.revise_daily_report`` only then.
REVISED_CUSTOMER_HOURLY = Asset(
    name="customer_hourly_revised", uri="x-tricloud://reports/customer_daily/revised_hours", group="customer_enrichment"
)
#: The daily rollup the report DAG builds once a day's hours are in, and rebuilds when one is revised.
CUSTOMER_DAILY_REPORT = Asset(
    name="customer_daily_report", uri="x-tricloud://lake/reports/customer_daily", group="customer_enrichment"
)


#: Partition key of an hour: its UTC start without offset, the default ``input_format`` of the SDK's
#: temporal mappers (``StartOfDayMapper`` et al.), which is also the form ``DayWindow`` expects back.
HOUR_KEY_FORMAT = "%Y-%m-%dT%H:%M:%S"


def hour_partition_key(hour: str | datetime) -> str:
    """The partition key of the hour starting at ``hour`` (ISO string or datetime; naive = UTC),
    e.g. ``2026-11-24T10:00:00`` for ``2026-11-24T10:00:00+00:00``. Raises ``ValueError`` for a
    time that is not a whole hour."""
    start = datetime.fromisoformat(hour) if isinstance(hour, str) else hour
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if (start.minute, start.second, start.microsecond) != (0, 0, 0):
        raise ValueError(f"{hour!r} is not the start of a whole UTC hour")
    return start.strftime(HOUR_KEY_FORMAT)


def describe_outlets(context: Context, **extra: str) -> None:
    """Attach ``extra`` (e.g. ``hour=...``) to the events of every asset the running task produces.

    With ``hour``, each event also carries that hour's partition key (:func:`hour_partition_key`):
    the task run's own DAG run is not partitioned (an hourly cron), so the key is set per event."""
    key = hour_partition_key(extra["hour"]) if "hour" in extra else None
    for asset in context["task"].outlets:
        context["outlet_events"][asset].extra = extra
        if key:
            context["outlet_events"][asset].add_partitions(key)


def daily_report_schedule(max_missing_hours: int = 0) -> PartitionedAssetTimetable:
    """The daily report's schedule: one run per UTC day (partition key ``YYYY-MM-DD``).

    A day's run starts once its 24 hourly partitions of ``customer_hourly_replicated`` have arrived
    (``DayWindow`` + ``WaitForAll``), or once at most ``max_missing_hours`` are missing
    (``MinimumCount(-n)``); or, for a day already reported, as soon as one of its hours is revised
    (``customer_hourly_revised``, day of the hour by ``StartOfDayMapper``): Airflow 3.3.2 has no
    rerun policy for rollups (apache/airflow#65923), see docs/design.md.
    """
    if not 0 <= max_missing_hours <= 23:
        raise ValueError(f"max_missing_hours must be 0..23, got {max_missing_hours}")
    wait = WaitForAll() if max_missing_hours == 0 else MinimumCount(-max_missing_hours)
    return PartitionedAssetTimetable(
        assets=REPLICATED_CUSTOMER_HOURLY | REVISED_CUSTOMER_HOURLY,
        partition_mapper_config={
            REPLICATED_CUSTOMER_HOURLY: RollupMapper(
                upstream_mapper=StartOfDayMapper(timezone="UTC"), window=DayWindow(), wait_policy=wait
            ),
            REVISED_CUSTOMER_HOURLY: StartOfDayMapper(timezone="UTC"),
        },
    )
