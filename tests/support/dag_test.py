"""A DAG of dags/ parsed for ``dag.test()`` (one process: the tests' in-process clusters and emulators reachable)."""

from __future__ import annotations

import pytest


def dag_for_test(dag_id: str):
    """``dag_id`` as the DagBag parses it from dags/, with the hourly deadline alert off.

    Airflow 3.3.2's ``dag.test()`` fails a run that *succeeded* when its DAG has a deadline:
    ``DagRun.update_state`` looks each entry of ``dag.deadline`` up as a stored DeadlineAlert id, which it
    is only in a serialized DAG (here it is the alert itself: ``'dict' object has no attribute 'hex'``).
    So these runs parse the DAG with ``TRICLOUD_HOUR_DEADLINE_MINUTES=off``; the deadline itself is tested
    on a real scheduler (tests/faults/test_alerts.py) and in tests/unit/test_alerts.py.
    """
    from airflow.dag_processing.dagbag import DagBag

    from stack.config import ROOT
    from tricloud.alerts import DEADLINE_OFF, HOUR_DEADLINE_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(HOUR_DEADLINE_ENV, DEADLINE_OFF)
        return DagBag(str(ROOT / "dags")).dags[dag_id]
