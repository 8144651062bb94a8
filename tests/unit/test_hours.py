from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.utils.types import DagRunType

from include import lake
from tricloud.hours import resolve_hour

pytestmark = pytest.mark.fast  # the fast tier: no server (`pytest -m fast`)
T10 = datetime(2026, 11, 24, 10, tzinfo=UTC)


class TestResolveHour:
    def test_hourly_interval_passes_through(self):
        assert resolve_hour(T10, T10 + timedelta(hours=1)) == (T10, T10 + timedelta(hours=1))

    def test_no_interval_falls_back_to_last_complete_hour(self):
        run_after = datetime(2026, 11, 24, 12, 17, tzinfo=UTC)
        run = SimpleNamespace(run_after=run_after, logical_date=None, run_type="manual")
        assert resolve_hour(None, None, run) == (
            datetime(2026, 11, 24, 11, tzinfo=UTC),
            datetime(2026, 11, 24, 12, tzinfo=UTC),
        )
        assert resolve_hour(run_after, run_after, run)[0] == datetime(2026, 11, 24, 11, tzinfo=UTC)

    def test_manual_run_processes_the_hour_ending_at_its_logical_date(self):
        # What `airflow dags trigger --logical-date 2026-11-20T07:00` gives in Airflow 3.3: the data
        # interval of the trigger time, not of the logical date.
        now_interval = (datetime(2026, 11, 25, 2, tzinfo=UTC), datetime(2026, 11, 25, 3, tzinfo=UTC))
        run = SimpleNamespace(
            run_after=datetime(2026, 11, 25, 3, 54, tzinfo=UTC),
            logical_date=datetime(2026, 11, 20, 7, tzinfo=UTC),
            run_type=DagRunType.MANUAL,
        )
        assert resolve_hour(*now_interval, run) == (
            datetime(2026, 11, 20, 6, tzinfo=UTC),
            datetime(2026, 11, 20, 7, tzinfo=UTC),
        )
        # A logical date inside an hour (the UI form's default "now") keeps the inferred interval,
        form_default = SimpleNamespace(
            run_after=None, logical_date=datetime(2026, 11, 25, 3, 54, tzinfo=UTC), run_type="manual"
        )
        assert resolve_hour(*now_interval, form_default) == now_interval
        # and a scheduled run is never moved.
        scheduled = SimpleNamespace(run_after=None, logical_date=now_interval[0], run_type=DagRunType.SCHEDULED)
        assert resolve_hour(*now_interval, scheduled) == now_interval

    def test_requested_hour_wins_over_the_interval(self):
        start, end = resolve_hour(None, None, None, requested="2026-11-24T10:00:00Z")
        assert (start, end) == (T10, T10 + timedelta(hours=1))
        assert (
            resolve_hour(T10 + timedelta(hours=5), T10 + timedelta(hours=6), None, "2026-11-24T10:00:00+00:00")[0]
            == T10
        )
        with pytest.raises(ValueError, match="not the start of an hour"):
            resolve_hour(None, None, None, requested="2026-11-24T10:30:00Z")

    @pytest.mark.parametrize(
        ("value", "ok"),
        [
            ("2026-11-24T10:00:00+00:00", True),
            ("2026-11-24T10:00:00Z", True),
            ("2026-11-24T10:00Z", True),
            ("2026-11-24T10:30:00+00:00", False),
            ("2026-11-24T10:00:00+01:00", False),
            ("yesterday", False),
        ],
    )
    def test_param_pattern_accepts_whole_utc_hours_only(self, value, ok):
        import re

        from tricloud.hours import HOUR_PARAM_PATTERN

        assert bool(re.match(HOUR_PARAM_PATTERN, value)) is ok

    @pytest.mark.parametrize("end", [T10 + timedelta(hours=2), T10 + timedelta(minutes=30)])
    def test_other_widths_are_refused(self, end):
        with pytest.raises(ValueError, match="one-hour data interval"):
            resolve_hour(T10, end)


class TestParseHour:
    def test_accepts_z_and_offsets(self):
        assert lake.parse_hour("2026-11-24T10:00:00Z") == T10
        assert lake.parse_hour("2026-11-24T11:00:00+01:00") == T10

    def test_refuses_a_time_inside_the_hour(self):
        with pytest.raises(ValueError, match="not the start of an hour"):
            lake.parse_hour("2026-11-24T10:30:00Z")
