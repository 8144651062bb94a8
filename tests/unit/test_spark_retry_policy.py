"""A Spark task that failed on its input fails at once; other failures follow the shared retry classes.

The chain under test: the job process exits ``DATA_ERROR_EXIT`` on a missing or unusable input
(``include.jobs.common.run``); the operator turns that exit into ``SparkJobDataError``
(``tricloud.operators.spark.data_error``); the Spark tasks' ``retry_policy`` (the shared
``tricloud.retries.RETRY_POLICY``, evaluated by the task runner with the raised exception) returns FAIL for it,
RETRY for a transient failure and DEFAULT (the task's ``retries`` with backoff) for anything unknown
(all classes: tests/unit/test_retry_classes.py and test_retry_cloud_errors.py). In real Airflow:
tests/e2e/test_prod_topology.py (the backfill: a missing hour fails on try 1) and tests/faults/test_spark_reattach.py
(a killed worker is retried, try 2 succeeds).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.sdk.exceptions import AirflowException

from include.errors import MissingFileConfigError
from include.jobs import DATA_ERROR_EXIT, common, ingest_customers, ingest_products, inputs
from include.lease import LEASE_LOST_EXIT

pytestmark = pytest.mark.fast  # the fast tier: no server (`pytest -m fast`)
HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def _argv(root) -> list[str]:
    return ["--lake-root", str(root), "--start", HOUR.isoformat(), "--end", "2026-11-24T11:00:00+00:00"]


class TestJobExitCode:
    @pytest.mark.parametrize("job", [ingest_customers, ingest_products], ids=lambda m: m.__name__.rsplit(".", 1)[1])
    def test_a_missing_hour_exits_with_the_data_error_code_naming_the_hour(self, job, tmp_path, capsys):
        with pytest.raises(SystemExit) as exit_:
            # run() raises before it touches Spark: no JVM is started inside the fast tier
            common.run(lambda argv: job.run(None, argv), _argv(tmp_path))
        assert exit_.value.code == DATA_ERROR_EXIT
        assert "NoInputError: no input for hour 2026-11-24T10:00Z" in capsys.readouterr().err

    def test_an_unusable_file_exits_with_the_data_error_code(self):
        def main(argv):
            raise inputs.InputFormatError("schema change: missing ['name']")

        with pytest.raises(SystemExit) as exit_:
            common.run(main, [])
        assert exit_.value.code == DATA_ERROR_EXIT

    def test_a_bad_setting_exits_with_the_data_error_code(self, capsys):
        from include.paths import ObjectStoreLakeNotSupported

        def main(argv):
            raise ObjectStoreLakeNotSupported("LAKE_ROOT=s3://b/lake: the athlete job needs a local lake")

        with pytest.raises(SystemExit) as exit_:
            common.run(main, [])
        assert exit_.value.code == DATA_ERROR_EXIT
        assert "ObjectStoreLakeNotSupported: LAKE_ROOT=s3://b/lake" in capsys.readouterr().err

    def test_the_athlete_job_on_an_object_store_lake_exits_with_the_data_error_code(self, tmp_path):
        """Its spark-submit entry (``python …/athlete_age_by_year.py``) used to exit 1: retried twice."""
        import subprocess
        import sys

        from include.jobs import athlete_age_by_year

        argv = ["--input", str(tmp_path / "athlete_events.csv"), "--lake-root", "s3://bucket/lake"]
        proc = subprocess.run(
            [sys.executable, athlete_age_by_year.__file__, *argv], capture_output=True, text=True, check=False
        )
        assert proc.returncode == DATA_ERROR_EXIT, proc.stderr[-2000:]
        assert "s3://bucket/lake" in proc.stderr

    def test_the_connect_runner_records_a_bad_setting_with_the_same_code(self):
        from include.errors import ConfigError
        from tricloud.cluster.local_connect_runner import failure

        message, code = failure(ConfigError("TRICLOUD_OBJECT_STORE_IO='x': set it to …"), "sc://127.0.0.1:1")
        assert code == DATA_ERROR_EXIT
        assert message.startswith("ConfigError: TRICLOUD_OBJECT_STORE_IO")

    def test_any_other_failure_is_an_ordinary_exception(self):
        def main(argv):
            raise OSError("connection reset")

        with pytest.raises(OSError, match="connection reset"):
            common.run(main, [])

    def test_the_codes_differ_from_the_lease_and_from_a_plain_failure(self):
        assert len({DATA_ERROR_EXIT, LEASE_LOST_EXIT, 1}) == 3


class TestOperatorClassification:
    @pytest.mark.parametrize(
        ("message", "exit_code", "expected"),
        [
            (None, DATA_ERROR_EXIT, True),  # a backend that knows the exit code (local runner record)
            (None, 1, False),
            ("boom NoInputError: no input for hour", 1, False),  # the exit code wins when known
            (f"Cannot execute: spark-submit x.py. Error code is: {DATA_ERROR_EXIT}.", None, True),
            ("Cannot execute: spark-submit x.py. Error code is: 1.", None, False),
            ("step failed\n--- log ---\ncommon.NoInputError: no input for hour 2026-11-24T10:00Z", None, True),
            ("InputFormatError: schema change", None, True),
            ("--- log tail ---\npaths.ObjectStoreLakeNotSupported: LAKE_ROOT=s3://b/lake", None, True),
            ("include.errors.ConfigError: TRICLOUD_OBJECT_STORE_IO='x'", None, True),
            ("ValueError: could not convert string", None, False),
            ("retrying after a ConfigError in the previous attempt", None, False),  # a mention, not the error
            ("Traceback ...\n  athletes.data.ChecksumError: athlete_events.csv", None, True),
            ("include.quality.QualityInputError: no enriched hour", None, True),
            ("Lost executor 0: worker lost", None, False),
            (None, None, False),
        ],
    )
    def test_data_error(self, message, exit_code, expected):
        from tricloud.operators.spark import data_error

        assert data_error(message, exit_code) is expected


def test_every_deterministic_error_of_include_is_recognised_by_name():
    """A new DeterministicError subclass in include/ must be added to DATA_ERROR_NAMES, or a backend that
    reports only the driver log would retry it."""
    import importlib
    import pkgutil

    import include
    from include.errors import DeterministicError
    from tricloud.operators.spark import DATA_ERROR_NAMES

    for module in pkgutil.walk_packages(include.__path__, "include."):
        importlib.import_module(module.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    defined = {cls.__name__ for cls in subclasses(DeterministicError)} | {"DeterministicError"}
    assert sorted(defined - set(DATA_ERROR_NAMES)) == []


class TestRetryPolicy:
    def test_a_data_error_fails_on_the_first_try(self):
        from tricloud.operators.spark import SPARK_RETRY_POLICY, SparkJobDataError

        decision = SPARK_RETRY_POLICY.evaluate(SparkJobDataError("no input for hour"), try_number=1, max_tries=3)
        assert decision.action is RetryAction.FAIL and decision.reason

    @pytest.mark.parametrize(
        ("error", "action"),
        [
            (AirflowException("Spark job x ended FAILED: Lost executor 0"), RetryAction.RETRY),  # unknown: retried
            (ConnectionRefusedError("cluster down"), RetryAction.RETRY),  # transient: tricloud.retries
            (MissingFileConfigError("Spark application x.py does not exist"), RetryAction.FAIL),  # deterministic
        ],
        ids=["job failed", "cluster down", "missing application"],
    )
    def test_other_failures_follow_the_shared_classes(self, error, action):
        from tricloud.operators.spark import SPARK_RETRY_POLICY

        assert SPARK_RETRY_POLICY.evaluate(error, try_number=1, max_tries=3).action is action

    def test_every_spark_task_of_every_dag_carries_it_and_keeps_its_retries(self):
        from pathlib import Path

        from airflow.dag_processing.dagbag import DagBag

        from tricloud.operators.spark import SPARK_RETRY_POLICY, SparkJobOperator

        dagbag = DagBag(str(Path(__file__).resolve().parents[2] / "dags"))
        spark_tasks = [t for d in dagbag.dags.values() for t in d.tasks if isinstance(t, SparkJobOperator)]
        assert {t.task_id for t in spark_tasks} >= {"ingest_customer_data", "ingest_product_data"}
        for t in spark_tasks:
            assert t.retry_policy is SPARK_RETRY_POLICY, t.task_id
            assert t.retries >= 2, t.task_id
