"""The hour a run processes: [start, end) of exactly one hour, resolved explicitly.

Scheduled and backfilled runs carry a one-hour data interval (CronDataIntervalTimetable). A manual
run may name its hour with the ``hour`` param (the trigger form validates it); a manual run with
neither has no data interval in Airflow 3 and processes the last complete hour before the run was
created, saying so in the task log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
#: What the ``hour`` param accepts: the start of a whole UTC hour, e.g. 2026-11-24T10:00:00+00:00.
HOUR_PARAM_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:00(:00)?(Z|\+00:00)$"


def resolve_hour(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime | None = None,
    requested: str | datetime | None = None,
) -> tuple[datetime, datetime]:
    """Return the run's hour as (start, end) in UTC; raise if the interval is not one whole hour.

    ``requested`` (the ``hour`` param of a manual run) wins over the data interval.
    """
    if requested:
        from include.lake import parse_hour

        start = parse_hour(requested)
        log.info("Processing the requested hour [%s, %s) (param 'hour')", start, start + HOUR)
        return start, start + HOUR
    if data_interval_start is None or data_interval_end is None or data_interval_start == data_interval_end:
        ref = (run_after or datetime.now(UTC)).astimezone(UTC)
        end = ref.replace(minute=0, second=0, microsecond=0)
        start = end - HOUR
        log.warning("Run has no hourly data interval: processing the last complete hour [%s, %s)", start, end)
        return start, end
    start, end = data_interval_start.astimezone(UTC), data_interval_end.astimezone(UTC)
    if end - start != HOUR or start.minute or start.second or start.microsecond:
        raise ValueError(f"expected a whole one-hour data interval, got [{start}, {end})")
    return start, end


def hour_start(data_interval_start=None, data_interval_end=None, run_after=None, requested=None) -> str:
    """Jinja macro: ISO start of the run's hour."""
    return resolve_hour(data_interval_start, data_interval_end, run_after, requested)[0].isoformat()


def hour_end(data_interval_start=None, data_interval_end=None, run_after=None, requested=None) -> str:
    """Jinja macro: ISO end of the run's hour."""
    return resolve_hour(data_interval_start, data_interval_end, run_after, requested)[1].isoformat()
