"""``keep_alive`` before a teardown task: a bug in the lease renewal must not keep ``stop_cluster`` from
stopping a cloud cluster (logged with its traceback, the task goes on); before a setup it still shows."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.fast  # no emulator, no Spark, no Airflow server

HOUR = "2026-11-24T10:00:00+00:00"


class StubTI:
    """What ``keep_alive`` reads from Airflow's task instance: the claim's XCom and the task id."""

    def __init__(self, claim: dict, task_id: str) -> None:
        self.claim, self.task_id, self.try_number = claim, task_id, 1

    def xcom_pull(self, task_ids: str):
        assert task_ids == "claim_hour"
        return self.claim


@pytest.fixture
def tasks():
    """start_cluster / stop_cluster as the DAG wires them: real SDK operators, the second a teardown."""
    import pendulum
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("keep_alive_teardown", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        start, stop = EmptyOperator(task_id="start_cluster"), EmptyOperator(task_id="stop_cluster")
        start >> stop.as_teardown(setups=start)
    assert stop.is_teardown and not start.is_teardown
    return start, stop


# A claim without its generation: not the store's error, a bug (KeyError) in what keep_alive reads.
BROKEN_CLAIM = {"hour": HOUR, "pipeline": "customer_enrichment", "lake_root": "/nowhere"}


def test_a_bug_before_a_teardown_is_logged_and_the_task_goes_on(tasks, caplog):
    from tricloud.hour_lease import keep_alive

    _, stop = tasks
    with caplog.at_level(logging.ERROR, logger="tricloud.hour_lease"):
        keep_alive({"ti": StubTI(BROKEN_CLAIM, "stop_cluster"), "task": stop})  # does not raise
    (record,) = [r for r in caplog.records if "Lease not renewed" in r.getMessage()]
    assert record.levelno == logging.ERROR and "stop_cluster goes on" in record.getMessage()
    assert record.exc_info and record.exc_info[0] is KeyError  # the traceback is in the task log


def test_a_bug_before_a_setup_still_shows(tasks):
    from tricloud.hour_lease import keep_alive

    start, _ = tasks
    with pytest.raises(KeyError):
        keep_alive({"ti": StubTI(BROKEN_CLAIM, "start_cluster"), "task": start})
