"""The daily report's partition schedule, as the scheduler sees it (fast: no scheduler, no DB).

The SDK declaration is converted to the core timetable the scheduler evaluates, and the keys our
producers emit (``tricloud.assets.hour_partition_key``) are fed through its mappers and wait policy:
this is where a key format the temporal mappers cannot parse, or a window that never completes,
would show. The real scheduler runs the same path in tests/integration/test_daily_report_partitions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tricloud import assets, settings

REPORT_DAG = Path(__file__).resolve().parents[2] / "dags" / "customer_daily_report.py"
DAY = datetime(2026, 11, 24, tzinfo=UTC)
HOUR_KEYS = [assets.hour_partition_key(DAY + timedelta(hours=h)) for h in range(24)]


def core_mapper(timetable, asset):
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(timetable).get_partition_mapper(name=asset.name, uri=asset.uri)


def report_dag(monkeypatch, value: str | None):
    from airflow.dag_processing.dagbag import DagBag

    if value is None:
        monkeypatch.delenv(settings.REPORT_MAX_MISSING_HOURS_ENV, raising=False)
    else:
        monkeypatch.setenv(settings.REPORT_MAX_MISSING_HOURS_ENV, value)
    return DagBag(str(REPORT_DAG))


class TestHourPartitionKey:
    @pytest.mark.parametrize(
        ("hour", "key"),
        [
            ("2026-11-24T10:00:00+00:00", "2026-11-24T10:00:00"),
            ("2026-11-24T11:00:00+01:00", "2026-11-24T10:00:00"),  # the key is always the UTC hour
            (datetime(2026, 11, 24, 23), "2026-11-24T23:00:00"),  # naive = UTC
        ],
    )
    def test_key_is_the_utc_start_in_the_mappers_input_format(self, hour, key):
        assert assets.hour_partition_key(hour) == key

    def test_a_time_inside_an_hour_is_refused(self):
        with pytest.raises(ValueError, match="not the start of a whole UTC hour"):
            assets.hour_partition_key("2026-11-24T10:30:00+00:00")


class TestProducerEvents:
    """What the hourly DAG's producing tasks put in their outlet events (the SDK's own accessors)."""

    @pytest.mark.parametrize("task_id", ["check_quality", "verify_replicas", "revise_daily_report"])
    def test_each_event_carries_the_hour_as_partition_key(self, task_id):
        from airflow.dag_processing.dagbag import DagBag
        from airflow.sdk.execution_time.context import OutletEventAccessors

        task = DagBag(str(REPORT_DAG.with_name("customer_enrichment.py"))).dags["customer_enrichment"].get_task(task_id)
        events = OutletEventAccessors()
        assets.describe_outlets({"task": task, "outlet_events": events}, hour="2026-11-24T10:00:00+00:00")
        assert len(task.outlets) == 1
        for asset in task.outlets:
            assert events[asset].partition_keys == {"2026-11-24T10:00:00"}
            assert events[asset].extra == {"hour": "2026-11-24T10:00:00+00:00"}


class TestScheduleAsTheSchedulerSeesIt:
    def test_the_day_needs_exactly_the_24_keys_our_producers_emit(self):
        mapper = core_mapper(assets.daily_report_schedule(0), assets.REPLICATED_CUSTOMER_HOURLY)
        assert {mapper.to_downstream(k) for k in HOUR_KEYS} == {"2026-11-24"}
        assert mapper.to_downstream(assets.hour_partition_key(DAY + timedelta(hours=24))) == "2026-11-25"
        assert mapper.to_upstream("2026-11-24") == frozenset(HOUR_KEYS)

    def test_wait_for_all_by_default(self):
        mapper = core_mapper(assets.daily_report_schedule(0), assets.REPLICATED_CUSTOMER_HOURLY)
        expected = mapper.to_upstream("2026-11-24")
        assert not mapper.wait_policy.is_satisfied_by_keys(matched=set(HOUR_KEYS[:23]), expected=expected).satisfied
        assert mapper.wait_policy.is_satisfied_by_keys(matched=set(HOUR_KEYS), expected=expected).satisfied

    def test_at_most_n_missing_hours(self):
        mapper = core_mapper(assets.daily_report_schedule(2), assets.REPLICATED_CUSTOMER_HOURLY)
        expected = mapper.to_upstream("2026-11-24")
        assert not mapper.wait_policy.is_satisfied_by_keys(matched=set(HOUR_KEYS[:21]), expected=expected).satisfied
        assert mapper.wait_policy.is_satisfied_by_keys(matched=set(HOUR_KEYS[:22]), expected=expected).satisfied

    def test_a_revised_hour_maps_to_its_day_alone(self):
        mapper = core_mapper(assets.daily_report_schedule(0), assets.REVISED_CUSTOMER_HOURLY)
        assert not getattr(mapper, "is_rollup", False)
        assert mapper.to_downstream("2026-11-24T23:00:00") == "2026-11-24"


class TestSetting:
    @pytest.mark.parametrize(
        ("value", "policy"), [(None, "WaitForAll()"), ("0", "WaitForAll()"), ("3", "MinimumCount(n=-3)")]
    )
    def test_the_dag_takes_its_wait_policy_from_the_setting(self, monkeypatch, value, policy):
        bag = report_dag(monkeypatch, value)
        assert bag.import_errors == {}
        timetable = bag.dags["customer_daily_report"].timetable
        assert repr(timetable.partition_mapper_config[assets.REPLICATED_CUSTOMER_HOURLY].wait_policy) == policy

    @pytest.mark.parametrize("value", ["-1", "24", "three", "1.5"])
    def test_a_bad_value_fails_the_parse_naming_the_setting(self, monkeypatch, value):
        bag = report_dag(monkeypatch, value)
        (error,) = bag.import_errors.values()
        assert "TRICLOUD_REPORT_MAX_MISSING_HOURS" in error and "from 0" in error
