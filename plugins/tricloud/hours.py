"""The hour a run processes: [start, end) of exactly one hour, resolved explicitly.

Scheduled and backfilled runs carry a one-hour data interval (CronDataIntervalTimetable). A manual
run may name its hour with the ``hour`` param (the trigger form validates it), or with a logical date
on the hour (the hour ending at it); a manual run with neither has no data interval in Airflow 3 and
processes the last complete hour before the run was created, saying so in the task log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
#: What the ``hour`` param accepts: the start of a whole UTC hour, e.g. 2026-11-24T10:00:00+00:00.
HOUR_PARAM_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:00(:00)?(Z|\+00:00)$"


def resolve_hour(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    dag_run: Any = None,
    requested: str | datetime | None = None,
) -> tuple[datetime, datetime]:
    """Return the run's hour as (start, end) in UTC; raise if the interval is not one whole hour.

    In order: ``requested`` (the ``hour`` param of a manual run); for a manual run whose logical date
    is on the hour, the hour ending at it (``airflow dags trigger --logical-date`` infers the data
    interval from the trigger time instead, in Airflow 3.3); the run's data interval; without one,
    the last complete hour before the run was created.
    """
    if requested:
        from include.lake import parse_hour

        start = parse_hour(requested)
        log.info("Processing the requested hour [%s, %s) (param 'hour')", start, start + HOUR)
        return start, start + HOUR
    logical = getattr(dag_run, "logical_date", None)
    run_type = getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", None))
    if run_type == "manual" and logical is not None and _on_the_hour(logical):
        end = logical.astimezone(UTC)
        if data_interval_end is not None and data_interval_end.astimezone(UTC) != end:
            log.warning(
                "Data interval [%s, %s) does not end at the logical date %s: processing [%s, %s) as documented",
                data_interval_start,
                data_interval_end,
                end,
                end - HOUR,
                end,
            )
        return end - HOUR, end
    if data_interval_start is None or data_interval_end is None or data_interval_start == data_interval_end:
        ref = (getattr(dag_run, "run_after", None) or datetime.now(UTC)).astimezone(UTC)
        end = ref.replace(minute=0, second=0, microsecond=0)
        start = end - HOUR
        log.warning("Run has no hourly data interval: processing the last complete hour [%s, %s)", start, end)
        return start, end
    start, end = data_interval_start.astimezone(UTC), data_interval_end.astimezone(UTC)
    if end - start != HOUR or not _on_the_hour(start):
        raise ValueError(f"expected a whole one-hour data interval, got [{start}, {end})")
    return start, end


def _on_the_hour(t: datetime) -> bool:
    return not (t.minute or t.second or t.microsecond)


def hour_start(data_interval_start=None, data_interval_end=None, dag_run=None, requested=None) -> str:
    """Jinja macro: ISO start of the run's hour."""
    return resolve_hour(data_interval_start, data_interval_end, dag_run, requested)[0].isoformat()


def hour_end(data_interval_start=None, data_interval_end=None, dag_run=None, requested=None) -> str:
    """Jinja macro: ISO end of the run's hour."""
    return resolve_hour(data_interval_start, data_interval_end, dag_run, requested)[1].isoformat()
