"""The DAG's warehouse checks as declared (provider check operators, rendered for one hour) on a real SQLite warehouse.

The database sits under a directory whose name holds ``?``, ``#`` and ``%20`` (what SqliteHook's ``file:`` URI
would cut or decode): the checks must read that file, not create another. The rows are written by the real
load (tricloud.warehouse.load_hour) from a hand-written enriched partition, then spoiled on purpose.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include import lake

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
OTHER_HOUR = datetime(2026, 11, 24, 11, tzinfo=UTC)
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


class TI:
    """What the templates read of the task instance: the gate's XCom."""

    def __init__(self, customers: int) -> None:
        self.customers = customers

    def xcom_pull(self, task_ids, key=None):
        assert (task_ids, key) == ("check_quality", "quality")
        return {"enriched_customers": self.customers}


def write_enriched(root: Path, hour: datetime, spends: list[float]) -> None:
    part = lake.partition(root, lake.ENRICHED_CUSTOMERS, hour).path
    part.mkdir(parents=True)
    n = len(spends)
    table = {
        "customer_id": [f"C{i}" for i in range(n)],
        "name": ["n"] * n,
        "email": ["e@x.io"] * n,
        "country": ["DE"] * n,
        "order_count": [2] * n,
        "items": [3] * n,
        "spend": spends,
        "favourite_category": ["books"] * n,
        "first_order_ts": [hour] * n,
        "last_order_ts": [hour] * n,
        "window_start": [hour] * n,
    }
    pq.write_table(pa.table(table), part / "part-00000.parquet")


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR)).dags["customer_enrichment"]


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    """A warehouse holding 3 customers of HOUR and 2 of the next hour, loaded by the real load; its file path."""
    from tricloud.warehouse import load_hour

    root = tmp_path / "lake ?x=1 #2 100%20"
    db = root / "warehouse.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    write_enriched(root, HOUR, [1.0, 2.5, 0.0])
    write_enriched(root, OTHER_HOUR, [-9.0, 4.0])  # another hour's bad row must not count for HOUR
    load_hour("warehouse_default", root, HOUR)
    load_hour("warehouse_default", root, OTHER_HOUR)
    return db


def run_check(dag, task_id: str, lake_customers: int, hour: datetime = HOUR):
    """The declared task, rendered for ``hour`` as a run would render it, then executed."""
    task = dag.get_task(task_id).prepare_for_execution()
    context = {
        "data_interval_start": hour,
        "data_interval_end": hour + timedelta(hours=1),
        "dag_run": None,
        "params": {"hour": None},
        "ti": TI(lake_customers),
    }
    task.render_template_fields(context, dag.get_template_env())
    assert f"window_start = '{hour.isoformat()}'" in task.sql
    task.execute(context)
    return task


@pytest.mark.parametrize("task_id", ["check_warehouse_columns", "check_warehouse_table"])
def test_a_sound_hour_passes(dag, warehouse, task_id):
    run_check(dag, task_id, lake_customers=3)
    assert [p.name for p in warehouse.parent.parent.iterdir()] == [warehouse.parent.name]  # no stray database


def test_fewer_rows_than_the_lake_fail_without_retry(dag, warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="rows_equal_lake"):
        run_check(dag, "check_warehouse_table", lake_customers=4)


def test_a_negative_spend_in_the_hour_fails(dag, warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    with sqlite3.connect(warehouse) as con:
        con.execute(
            "UPDATE customer_hourly SET spend = -1 WHERE customer_id = 'C1' AND window_start = ?", (HOUR.isoformat(),)
        )
    with pytest.raises(AirflowFailException, match="(?s)Column: spend.*Check: min"):
        run_check(dag, "check_warehouse_columns", lake_customers=3)


# -- an empty hour, a real violation (check_warehouse_table) ----------------------------------------------
EMPTY_HOUR = datetime(2026, 11, 24, 12, tzinfo=UTC)  # no rows in the warehouse: every order rejected, say


@pytest.mark.parametrize("task_id", ["check_warehouse_columns", "check_warehouse_table"])
def test_an_hour_without_rows_passes_when_the_lake_has_none_either(dag, warehouse, task_id):
    with sqlite3.connect(warehouse) as con:
        (n,) = con.execute(
            "SELECT COUNT(*) FROM customer_hourly WHERE window_start = ?", (EMPTY_HOUR.isoformat(),)
        ).fetchone()
    assert n == 0
    task = run_check(dag, task_id, lake_customers=0, hour=EMPTY_HOUR)
    if task_id == "check_warehouse_table":
        assert {name: c["success"] for name, c in task.checks.items()} == dict.fromkeys(task.checks, True)


def test_an_empty_hour_still_fails_when_the_lake_has_customers(dag, warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="rows_equal_lake") as err:
        run_check(dag, "check_warehouse_table", lake_customers=2, hour=EMPTY_HOUR)
    assert "items_cover_orders" not in str(err.value).split("have failed:")[1]  # the row checks had no rows


@pytest.mark.parametrize(
    ("update", "check"),
    [
        ("items = order_count - 1", "items_cover_orders"),
        ("order_count = 0, items = 0", "orders_at_least_one"),
    ],
)
def test_a_row_violating_a_table_check_fails_naming_it(dag, warehouse, update, check):
    from airflow.sdk.exceptions import AirflowFailException

    with sqlite3.connect(warehouse) as con:
        con.execute(
            f"UPDATE customer_hourly SET {update} WHERE customer_id = 'C2' AND window_start = ?", (HOUR.isoformat(),)
        )
    with pytest.raises(AirflowFailException, match=check) as err:
        run_check(dag, "check_warehouse_table", lake_customers=3)
    failed = str(err.value).split("have failed:")[1]
    assert "rows_equal_lake" not in failed


# -- the quality gate: its verdict is deterministic, and only a passed hour emits customer_hourly_enriched --
class GateTI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


def run_gate(dag, root: Path, monkeypatch):
    """The declared check_quality task's callable for HOUR on the lake at ``root``; (outlet events, ti, error)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    monkeypatch.setenv("LAKE_ROOT", str(root))
    task = dag.get_task("check_quality")
    events, ti = OutletEventAccessors(), GateTI()
    error = None
    try:
        task.python_callable(
            data_interval_start=HOUR,
            data_interval_end=OTHER_HOUR,
            dag_run=None,
            params={"hour": None},
            task=task,
            outlet_events=events,
            ti=ti,
        )
    except Exception as exc:  # the test looks at what was raised
        error = exc
    return task, events, ti, error


class TestQualityGateTask:
    def test_the_enriched_asset_is_the_gates_outlet_not_the_enrichments(self, dag):
        from tricloud.assets import ENRICHED_CUSTOMER_HOURLY

        assert dag.get_task("check_quality").outlets == [ENRICHED_CUSTOMER_HOURLY]
        assert dag.get_task("enrich_customer_data").outlets == []

    def test_a_passed_hour_emits_the_enriched_hour_with_its_partition_key(self, dag, tmp_path, monkeypatch):
        from tests.unit.test_quality import tiny_hour

        tiny_hour(tmp_path, history=[200] * 6)
        task, events, ti, error = run_gate(dag, tmp_path, monkeypatch)
        assert error is None, error
        (asset,) = task.outlets
        assert events[asset].partition_keys == {"2026-11-24T10:00:00"}
        assert events[asset].extra == {"hour": HOUR.isoformat()}
        assert ti.pushed["quality"]["passed"] is True

    def test_a_gated_out_hour_fails_at_try_1_and_emits_nothing(self, dag, tmp_path, monkeypatch):
        from airflow.sdk.definitions.retry_policy import RetryAction

        from include.errors import QualityGateFailedError
        from tests.unit.test_quality import tiny_hour
        from tricloud.retries import RETRY_POLICY

        tiny_hour(tmp_path, rows_in=200, bad_email=60)
        task, events, ti, error = run_gate(dag, tmp_path, monkeypatch)
        assert isinstance(error, QualityGateFailedError), error
        assert "reject_rate.customer_activity" in str(error)
        assert ti.pushed["quality"]["passed"] is False  # the verdict is still kept
        (asset,) = task.outlets
        assert events[asset].partition_keys == set() and events[asset].extra == {}
        assert RETRY_POLICY.evaluate(error, try_number=1, max_tries=3).action is RetryAction.FAIL
        assert task.retries >= 2  # an I/O error of the gate is retried; its verdict is not
