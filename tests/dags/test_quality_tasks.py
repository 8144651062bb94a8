"""The DAG's warehouse checks as declared (provider check operators, rendered for one hour) on a real SQLite warehouse.

The database sits under a directory whose name holds ``?``, ``#`` and ``%20`` (what SqliteHook's ``file:`` URI
would cut or decode): the checks must read that file, not create another. The rows are written by the real
load (tricloud.warehouse.load_hour) from a hand-written enriched partition, then spoiled on purpose.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
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


def run_check(dag, task_id: str, lake_customers: int):
    """The declared task, rendered for HOUR as a run would render it, then executed."""
    task = dag.get_task(task_id).prepare_for_execution()
    context = {
        "data_interval_start": HOUR,
        "data_interval_end": OTHER_HOUR,
        "dag_run": None,
        "params": {"hour": None},
        "ti": TI(lake_customers),
    }
    task.render_template_fields(context, dag.get_template_env())
    assert f"window_start = '{HOUR.isoformat()}'" in task.sql
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
