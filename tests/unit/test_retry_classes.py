"""The shared retry policy (``tricloud.retries.RETRY_POLICY``) fed our own errors as the real components raise
them: Airflow's connection lookup, our settings, our enrichment, quality gate and warehouse load on a lake
without the hour, a damaged shipped data file, the Spark operator's job errors, a cloud error wrapped in ours,
an unknown error. Nothing is patched. Deterministic = fail at try 1; everything else (an unknown error
included) is retried with backoff, bounded by the task's retries. The cloud SDKs' own errors:
tests/unit/test_retry_cloud_errors.py. The real-Airflow side (a missing hour fails on try 1, no retry):
tests/faults/test_alerts.py.
"""

from __future__ import annotations

import json

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction

from tests.support.cloud_errors import closed_port, decide, raised, s3_error
from tricloud.retries import RETRY_POLICY, FailureClass, classify

pytestmark = pytest.mark.fast  # the fast tier: no emulator, no Spark, no Airflow server

FAIL, RETRY = RetryAction.FAIL, RetryAction.RETRY


# -- Airflow connections, our inputs ---------------------------------------------------------------------
class TestConfigAndData:
    def test_a_missing_connection_fails_at_once_naming_the_variable(self, monkeypatch):
        from tricloud.connections import require_connection

        monkeypatch.delenv("AIRFLOW_CONN_TRICLOUD_NOWHERE", raising=False)
        exc = raised(lambda: require_connection("tricloud_nowhere"))
        assert "AIRFLOW_CONN_TRICLOUD_NOWHERE" in str(exc)
        assert decide(exc) is FAIL

    def test_a_connection_of_the_wrong_type_fails_at_once_naming_the_variable(self, monkeypatch):
        from tricloud.connections import require_connection

        monkeypatch.setenv("AIRFLOW_CONN_TRICLOUD_WRONG", json.dumps({"conn_type": "sqlite", "host": "x"}))
        exc = raised(lambda: require_connection("tricloud_wrong", ("aws",)))
        assert type(exc).__name__ == "ConfigError" and isinstance(exc, ValueError)  # old callers still catch it
        assert "AIRFLOW_CONN_TRICLOUD_WRONG" in str(exc)
        assert decide(exc) is FAIL

    @pytest.mark.parametrize(
        ("env", "value", "read"),
        [
            ("TRICLOUD_DQ_MAX_REJECT_RATE", "5%", "quality"),
            ("TRICLOUD_REPORT_MAX_MISSING_HOURS", "24", "report"),
            ("LAKE_ROOT", "", "lake"),
        ],
    )
    def test_a_bad_setting_fails_at_once(self, monkeypatch, env, value, read):
        from include.quality_settings import Thresholds
        from tricloud import settings

        monkeypatch.setenv(env, value)
        call = {"quality": Thresholds.from_env, "report": settings.report_max_missing_hours, "lake": settings.lake_root}
        exc = raised(call[read])
        assert env in str(exc)
        assert decide(exc) is FAIL, repr(exc)

    @pytest.mark.parametrize("hour", ["yesterday", "2026-11-24T10:30:00Z"])
    def test_a_bad_hour_param_fails_at_once(self, hour):
        """The `hour` param from `airflow dags trigger --conf` (the trigger form validates, the CLI does not)."""
        from include.lake import parse_hour

        exc = raised(lambda: parse_hour(hour))
        assert hour in str(exc)
        assert decide(exc) is FAIL, repr(exc)

    def test_a_damaged_shipped_data_file_fails_at_once(self, tmp_path):
        """athlete_age_by_year's shipped file does not decompress to its published sha256."""
        import gzip

        from include.athletes import data

        source = tmp_path / "athlete_events.csv.gz"
        source.write_bytes(gzip.compress(b"ID,Name\n1,x\n"))
        exc = raised(lambda: data.extract(tmp_path / "out.csv", source))
        assert type(exc).__name__ == "ChecksumError" and isinstance(exc, ValueError)
        assert decide(exc) is FAIL

    def test_a_file_vanishing_under_a_reader_is_retried(self, tmp_path):
        """A bare FileNotFoundError: e.g. a trailing hour's file swapped away by publish_dir mid-read."""
        exc = raised(lambda: (tmp_path / "date=2026-11-24" / "hour=09" / "_summary.json").read_text())
        assert type(exc) is FileNotFoundError
        assert decide(exc) is RETRY

    def test_an_hour_without_clean_input_fails_at_once(self, tmp_path):
        from include.enrichment import enrich_hour

        exc = raised(lambda: enrich_hour(tmp_path, "2026-11-24T10:00:00+00:00"))
        assert type(exc).__name__ == "MissingInputError"
        assert isinstance(exc, FileNotFoundError)  # old callers still catch it
        assert decide(exc) is FAIL

    def test_an_hour_not_enriched_fails_the_gate_at_once(self, tmp_path):
        from include.quality import read_facts

        exc = raised(lambda: read_facts(tmp_path, "2026-11-24T10:00:00+00:00"))
        assert type(exc).__name__ == "QualityInputError"
        assert decide(exc) is FAIL

    def test_an_hour_not_enriched_fails_the_warehouse_load_at_once(self, tmp_path):
        """The same missing partition as the gate's: deterministic, naming the partition and what to run."""
        import sqlite3

        from include.warehouse import upsert_hour

        db = sqlite3.connect(":memory:")
        exc = raised(lambda: upsert_hour(db, "?", tmp_path, "2026-11-24T10:00:00+00:00"))
        assert type(exc).__name__ == "MissingInputError"
        assert isinstance(exc, FileNotFoundError)  # old callers still catch it
        assert "date=2026-11-24/hour=10" in str(exc) and "enrich_customer_data" in str(exc)
        assert decide(exc) is FAIL

    def test_a_spark_data_error_fails_and_a_lost_worker_is_retried(self):
        from airflow.sdk.exceptions import AirflowException

        from tricloud.cluster.base import JobFailed
        from tricloud.operators.spark import SparkJobDataError

        def operator_error(kind, message):  # as SparkJobOperator._finish raises them
            try:
                raise JobFailed(message, handle=None, status=None)
            except JobFailed as failure:
                try:
                    raise kind(f"Spark job k ended FAILED: {message}") from failure
                except kind as exc:
                    return exc

        assert decide(operator_error(SparkJobDataError, "NoInputError: no input for hour")) is FAIL
        assert decide(operator_error(AirflowException, "Lost executor 0: worker lost")) is RETRY

    def test_a_wrapped_cause_decides(self, monkeypatch):
        from include.replication.objects import ReplicationError

        cause = s3_error(monkeypatch, f"http://127.0.0.1:{closed_port()}")
        exc = ReplicationError("copy to s3 failed")
        exc.__cause__ = cause  # as `raise ReplicationError(...) from cause` leaves it
        found = classify(exc)
        assert found.kind is FailureClass.TRANSIENT
        assert "EndpointConnectionError" in found.reason

    def test_an_unknown_error_is_retried_within_the_tasks_retries(self):
        decision = RETRY_POLICY.evaluate(RuntimeError("something new"), try_number=1, max_tries=3)
        assert decision.action is RETRY
        assert decision.retry_delay is None  # the task's retry_delay and backoff, and never more than retries
        assert classify(RuntimeError("x")).kind is FailureClass.UNKNOWN
