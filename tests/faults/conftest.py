"""One private local Airflow for every test module of this package that runs the DAG on a live stack.

Starting a local Airflow (metadata DB migration, four processes, first DAG parse) is most of a small
scenario's fixed cost, and the fault modules each used to start their own. They now share one, started
when the first of them needs it and stopped when the package is done (``scope="package"``), so the
modules that do not use it (Spark faults, a full disk) never pay for it.

Independence: every test uses its own hours and run ids; :func:`fault_airflow` hands the stack over
healthy (restarted if a test killed it) and idle (a run a failed test left active is failed and waited
for), so no module's outcome depends on what ran before it.
"""

from __future__ import annotations

import warnings

import pytest

from tests.support.alert_sinks import alert_sinks_running
from tests.support.stack import ONLY_OUR_RUNS, hand_over_idle, private_stack
from tricloud.cluster.local_connect import MODE_ENV, SPARK_SUBMIT


@pytest.fixture(scope="package")
def alert_sinks():
    """A local SMTP server and webhook receiver (127.0.0.1) that the fault Airflow's alerts go to."""
    with alert_sinks_running() as sinks:
        yield sinks


@pytest.fixture(scope="package")
def shared_fault_airflow(spark_cluster, emulators, alert_sinks):
    """(airflow, rest client, env, lake root) of the package's private Airflow: only our runs, 30 s heartbeat,
    alerts (connections ``smtp_default``, ``tricloud_webhook``) going to :func:`alert_sinks`.

    Its hours run through spark-submit whatever the module that starts it: the faults its modules inject
    (a spark-submit driver killed, a task killed and re-attached to its job, one writer per hour) are
    spark-submit's, and the modules find its processes by command line. Those modules are marked
    ``spark_submit`` too (tests/conftest.py), which also stops the Connect server beside them;
    tests/faults/test_alerts.py is not: its hour fails on a missing input before any Spark job starts."""
    with private_stack("test-faults-airflow", **ONLY_OUR_RUNS, **alert_sinks.env, **{MODE_ENV: SPARK_SUBMIT}) as stack:
        yield stack


@pytest.fixture(scope="module")
def fault_airflow(shared_fault_airflow):
    """The shared stack, healthy and idle at the start and at the end of each module that uses it."""
    airflow, client, _, _ = shared_fault_airflow
    hand_over_idle(airflow, client)
    yield shared_fault_airflow
    if left := hand_over_idle(airflow, client):
        # RuntimeWarning: the suite ignores UserWarning (pyproject's filterwarnings), this must show.
        warnings.warn(f"runs left active by the module were failed: {left}", RuntimeWarning, stacklevel=1)
