"""What the hour lease tests share: the hour, a clock they move by hand, and Airflow's run states as a table.

Used by tests/unit/test_lease.py, tests/unit/test_lease_callers.py (their ``clock`` and ``lease`` fixtures:
tests/unit/conftest.py) and tests/integration/test_lease_on_s3.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: The hour under lease (UTC).
HOUR = "2026-11-24T10:00:00+00:00"
#: The clock's start: five minutes into the hour after :data:`HOUR` (UTC).
T0 = datetime(2026, 11, 24, 11, 5, tzinfo=UTC)


class Clock:
    """A clock for ``HourLease(clock=…)`` that stands at :data:`T0` until a test sets ``now``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def states(**by_run: str) -> Callable[[str, str], str | None]:
    """holder_state answering from a table; a run not in it is unknown to Airflow (raises, like a 404)."""

    def holder_state(dag_id: str, run_id: str) -> str | None:
        if run_id not in by_run:
            raise LookupError(f"no run {run_id}")
        return by_run[run_id]

    return holder_state
