"""SparkJobOperator and StartClusterOperator on the ``emr`` backend (configuration only), against moto.

The operators are the ones the DAGs use, unchanged; the backend is picked by
``TRICLOUD_CLUSTER_BACKEND=emr``. moto's steps never finish, so a "cloud" thread of the test acts as
EMR would, visibly: when the step appears at the endpoint it writes the metrics the driver would have
written (at the ``--metrics-file`` the step carries), or the driver's stderr where EMR ships it, and
sets the step's state. ``LAKE_ROOT`` is on the emulator's S3 (the backend refuses a local path: it
would be the cluster node's disk); the metrics are read from there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from tests.support.moto_aws import CONN_ID, EMR_CONN_ID, moto_aws
from tests.support.task_attempt import context, operator
from tests.support.waiting import wait_for
from tricloud.cluster.code_bundle import project_root
from tricloud.cluster.triggers import EmrStepTrigger
from tricloud.links import ClusterConsoleLink, DriverLogLink
from tricloud.operators import StartClusterOperator, StopClusterOperator

BUCKET = "tricloud-code"
METRICS = {"rows_in": 800, "rows_out": 795, "rejects": 5, "application_id": "application_1764490000000_0001"}
TRACEBACK = 'Traceback (most recent call last):\n  File "ingest_customers.py"\nKeyError: customer_idd'


@pytest.fixture(scope="module")
def aws():
    with moto_aws() as emulator:
        yield emulator


@pytest.fixture
def emr(aws, monkeypatch):
    """``TRICLOUD_CLUSTER_BACKEND=emr`` with its settings, and a running cluster started by the operator."""
    aws.reset()
    aws.client("s3").create_bucket(Bucket=BUCKET)
    for name, value in {
        "TRICLOUD_CLUSTER_BACKEND": "emr",
        "TRICLOUD_CODE_URI": f"s3://{BUCKET}/deploy",
        "TRICLOUD_AWS_CONN_ID": CONN_ID,
        "TRICLOUD_EMR_CONN_ID": EMR_CONN_ID,
        "LAKE_ROOT": f"s3://{BUCKET}/lake",
    }.items():
        monkeypatch.setenv(name, value)
    info = StartClusterOperator(task_id="start_cluster", backend_kwargs={"poll_interval": 1}).execute({})
    assert info["started"] is True and info["cluster_id"].startswith("j-")
    return info


def steps(aws, cluster_id: str) -> list:
    return list(aws.emr().clusters[cluster_id].steps)


def cloud(aws, cluster_id: str, outcome: str, *, after: threading.Event | None = None) -> threading.Thread:
    """Act as EMR in a thread: once a step is there (and ``after`` is set), end it with ``outcome``."""

    def act() -> None:
        step = wait_for(lambda: steps(aws, cluster_id), 60, "a step")[0]
        if after is not None:
            after.wait(120)
        if outcome == "COMPLETED":
            # What the driver writes at the end, where the step says.
            aws.put_json(step.args[step.args.index("--metrics-file") + 1], METRICS)
        else:
            log = f"s3://{BUCKET}/deploy/emr-logs/{cluster_id}/steps/{step.id}/stderr.gz"
            aws.put_gz(log, TRACEBACK)  # what EMR ships from the step's stderr
        step.state = outcome

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_the_job_runs_on_emr_and_returns_its_metrics(aws, emr, tmp_path):
    cloud(aws, emr["cluster_id"], "COMPLETED")
    op = operator()
    result = op.execute(context(tmp_path / "state.json", 1))
    assert {k: v for k, v in result.items() if k != "application"} == METRICS
    (step,) = steps(aws, emr["cluster_id"])
    assert step.args[:3] == ["spark-submit", "--deploy-mode", "cluster"] and step.action_on_failure == "CONTINUE"
    assert ClusterConsoleLink().get_link(op, ti_key=None).endswith(f"#/clusterDetails/{emr['cluster_id']}")
    assert DriverLogLink().get_link(op, ti_key=None).endswith(f"/steps/{step.id}/stderr.gz")
    # Teardown by the operator the DAG uses: the cluster this run created is terminated, twice is fine.

    class TI:
        def xcom_pull(self, task_ids):
            return emr

    StopClusterOperator(task_id="stop_cluster").execute({"ti": TI()})
    StopClusterOperator(task_id="stop_cluster").execute({"ti": TI()})
    assert aws.emr().clusters[emr["cluster_id"]].state == "TERMINATED"


def test_a_failed_job_fails_the_task_with_the_drivers_error(aws, emr, tmp_path):
    from airflow.sdk.exceptions import AirflowException

    cloud(aws, emr["cluster_id"], "FAILED")
    with pytest.raises(AirflowException) as err:
        operator().execute(context(tmp_path / "state.json", 1))
    assert "ended FAILED" in str(err.value) and "KeyError: customer_idd" in str(err.value)
    assert f"emr-logs/{emr['cluster_id']}/steps/" in str(err.value)  # where the full log is


def test_killing_the_task_cancels_the_step(aws, emr, tmp_path):
    op = operator()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context(tmp_path / "state.json", 1))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    (step,) = wait_for(lambda: steps(aws, emr["cluster_id"]), 60, "the step")
    wait_for(lambda: op._handle is not None, 60, "the operator to hold its job")
    op.on_kill()  # what Airflow calls when the task is killed
    thread.join(60)
    assert not thread.is_alive()
    assert step.state == "CANCELLED"  # at the endpoint (CancelSteps)
    assert errors and "CANCELLED" in str(errors[0])


def test_a_retry_after_the_worker_died_reattaches_to_the_running_step(aws, emr, tmp_path):
    store = tmp_path / "state.json"
    root = project_root()
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'plugins'}"}
    first = subprocess.Popen(
        [sys.executable, "-m", "tests.support.task_attempt", str(store), "1"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: steps(aws, emr["cluster_id"]), 120, "the first attempt's step")
        wait_for(lambda: store.is_file() and "tricloud_spark_job" in store.read_text(), 60, "the stored handle")
    finally:
        first.send_signal(signal.SIGKILL)  # the worker dies mid-job
        first.wait(30)
    (step,) = steps(aws, emr["cluster_id"])
    assert step.state == "RUNNING"  # still running on the cluster
    retry_polling = threading.Event()
    cloud(aws, emr["cluster_id"], "COMPLETED", after=retry_polling)
    op = operator()
    timer = threading.Timer(2.0, retry_polling.set)  # the step ends while the retry is attached
    timer.start()
    result = op.execute(context(store, 2))
    assert {k: v for k, v in result.items() if k != "application"} == METRICS
    assert [s.id for s in steps(aws, emr["cluster_id"])] == [step.id]  # exactly one submission


def test_a_job_stored_by_another_backend_is_not_asked_about_a_fresh_step_runs(aws, emr, tmp_path):
    """The deployment switched from local to emr while a task had a failed try: its stored handle is a
    local pid, which DescribeStep would refuse on every retry and clear (found in review)."""
    store = tmp_path / "state.json"
    old = {"backend": "local", "job_id": "4242", "key": "tricloud-old", "result_uri": str(tmp_path / "m.json")}
    store.write_text(json.dumps({"tricloud_spark_job": {**old, "cluster_id": None, "details": {}}}))
    cloud(aws, emr["cluster_id"], "COMPLETED")
    result = operator().execute(context(store, 2))
    assert {k: v for k, v in result.items() if k != "application"} == METRICS
    assert len(steps(aws, emr["cluster_id"])) == 1


def test_deferrable_hands_the_step_to_a_trigger_that_cancels_on_kill(aws, emr, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    op = operator(deferrable=True)
    ctx = context(tmp_path / "state.json", 1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    trigger = deferred.value.trigger
    (step,) = steps(aws, emr["cluster_id"])
    assert isinstance(trigger, EmrStepTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "tricloud.cluster.triggers.EmrStepTrigger"
    assert kwargs["job_flow_id"] == emr["cluster_id"] and kwargs["step_id"] == step.id
    # What the triggerer does: rebuild the trigger from its serialised form and run it in an event loop
    # (the provider's aiobotocore waiter polls DescribeStep at the endpoint) until it fires an event;
    # meanwhile the cloud ends the step. The task then resumes with that event.
    rebuilt = EmrStepTrigger(**kwargs)
    ended = cloud(aws, emr["cluster_id"], "COMPLETED")
    event = asyncio.run(asyncio.wait_for(first_event(rebuilt), timeout=120))
    ended.join(30)
    assert event.payload["status"] == "success"  # the provider waiter saw the step COMPLETED
    resumed = operator(deferrable=True)
    result = getattr(resumed, deferred.value.method_name)(ctx, event.payload, **deferred.value.kwargs)
    assert {k: v for k, v in result.items() if k != "application"} == METRICS
    assert [s.id for s in steps(aws, emr["cluster_id"])] == [step.id]  # resuming submitted nothing


async def first_event(trigger):
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")
