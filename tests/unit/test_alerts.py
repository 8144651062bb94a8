"""The alerts (``tricloud.alerts``, sent by ``tricloud.alert_channels``) sent for real: the smtp provider's
SmtpNotifier to a local aiosmtpd server and the http provider's HttpNotifier to a local webhook receiver
(127.0.0.1), routed by connections; no Airflow server. The same path inside a real Airflow (a failed and a
late hour): tests/faults/test_alerts.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from tests.support.alert_sinks import EMAIL_TO, alert_sinks_running
from tricloud import alert_channels, alerts

pytestmark = pytest.mark.fast


@pytest.fixture
def sinks(monkeypatch):
    with alert_sinks_running() as s:
        for k, v in s.env.items():
            monkeypatch.setenv(k, v)
        yield s


def failed_context() -> dict:
    ti = SimpleNamespace(
        dag_id="customer_enrichment",
        task_id="ingest_customer_data",
        try_number=1,
        log_url="http://localhost:8080/dags/customer_enrichment/runs/r1/tasks/ingest_customer_data?try_number=1",
    )
    start = datetime(2026, 11, 24, 10, tzinfo=UTC)
    return {
        "ti": ti,
        "dag_run": SimpleNamespace(logical_date=start, run_type="scheduled"),
        "data_interval_start": start,
        "data_interval_end": start + timedelta(hours=1),
        "params": {"hour": None},
        # an error whose text carries the SMTP password: it must not leave in the alert
        "exception": RuntimeError("first line, password smtp-pw-Zq81xT\nsecond line"),
    }


class TestSend:
    def test_a_failure_goes_to_both_channels_naming_dag_hour_task_error_and_log(self, sinks):
        sent = alert_channels.send(alerts.failure_alert(failed_context()))
        assert sent == ["email", "webhook"]
        [mail], [post] = sinks.mails, sinks.posts
        assert mail["to"] == [EMAIL_TO]
        assert post["path"].endswith("path-secret-Pm44vD")  # the connection's URL, path kept
        for text in (mail["body"], post["body"]["text"]):
            assert "DAG: customer_enrichment" in text
            assert "Hour: 2026-11-24T10:00:00+00:00" in text
            assert "Task: ingest_customer_data (try 1)" in text
            assert "Error: RuntimeError: first line, password ***" in text
            assert "second line" not in text
            assert "Log: http://localhost:8080/dags/customer_enrichment/runs/r1/tasks/ingest_customer_data" in text
        for secret in sinks.secrets:
            assert secret not in mail["raw"] and secret not in post["raw"], secret

    @pytest.mark.parametrize(
        ("login", "extra", "expected"),
        [
            ("alerts@tricloud.test", {}, "alerts@tricloud.test"),
            ("apikey", {"from_email": "oncall-bot@tricloud.test"}, "oncall-bot@tricloud.test"),
            ("AKIAEXAMPLEUSER", {}, None),  # an SES-style SMTP user is never the sender
        ],
    )
    def test_the_sender_is_the_connections_from_email_never_a_relay_user(
        self, sinks, monkeypatch, login, extra, expected
    ):
        import json
        import socket

        conn = json.loads(os.environ["AIRFLOW_CONN_SMTP_DEFAULT"])
        conn["login"], conn["extra"] = login, {**conn["extra"], **extra}
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
        assert alert_channels.send(alerts.failure_alert(failed_context())) == ["email", "webhook"]
        [mail] = sinks.mails
        assert mail["from"] == (expected or f"tricloud@{socket.gethostname()}")

    def test_a_manual_dags_failure_names_the_run_not_an_hour(self, sinks):
        """restore_lake / check_connections process no one hour: their alert names the run."""
        context = failed_context()
        context["ti"].dag_id, context["ti"].task_id = "check_connections", "check_wasb_default"
        context["dag_run"] = SimpleNamespace(run_id="manual__2026-12-01T03:00:00+00:00", run_type="manual")
        context["exception"] = ConnectionError("connection 'wasb_default' does not work (…): check AIRFLOW_CONN_WASB")
        alerts.FailureAlert(hourly=False).notify(context)
        [post] = sinks.posts
        text = post["body"]["text"]
        assert text.startswith(
            "[tricloud] check_connections run manual__2026-12-01T03:00:00+00:00 failed: check_wasb_default (try 1)"
        )
        assert "Run: manual__2026-12-01T03:00:00+00:00" in text and "Hour:" not in text
        assert "Error: ConnectionError: connection 'wasb_default' does not work" in text

    def test_a_channel_without_connection_is_skipped_without_error(self, sinks, monkeypatch):
        monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
        assert alert_channels.send(alerts.failure_alert(failed_context())) == ["webhook"]
        assert sinks.mails == [] and len(sinks.posts) == 1

    def test_a_late_hour_names_the_run_and_its_deadline(self, sinks):
        alerts.notify_deadline_missed(context=late_context())
        [post] = sinks.posts
        text = post["body"]["text"]
        assert "hour 2026-11-24T10:00:00+00:00 late" in text
        assert "not finished by its deadline 2026-11-24T11:50:00+00:00" in text
        assert "/dags/customer_enrichment/runs/scheduled__2026-11-24T10%3A00%3A00%2B00%3A00" in text


def late_context(
    run_type: str = "scheduled", queued_at: str | None = "2026-11-24T11:00:02Z", state: str = "running"
) -> dict:
    """The context ``Deadline.handle_miss`` gives the callback: the run as the REST API's JSON, the deadline."""
    return {
        "dag_run": {
            "dag_id": "customer_enrichment",
            "dag_run_id": f"{run_type}__2026-11-24T10:00:00+00:00",
            "logical_date": "2026-11-24T10:00:00Z",
            "queued_at": queued_at,
            "data_interval_start": "2026-11-24T10:00:00Z",
            "data_interval_end": "2026-11-24T11:00:00Z",
            "run_type": run_type,
            "state": state,
            "conf": {},
        },
        "deadline": {"id": "x", "deadline_time": "2026-11-24T11:50:00+00:00"},
    }


DEADLINE = datetime(2026, 11, 24, 11, 50, tzinfo=UTC)


class TestLateVerdict:
    """Which runs that missed their deadline are late: Airflow makes the deadline from the hour when it creates
    the run, so backfills and runs queued after their deadline miss it at once without being late."""

    @pytest.mark.parametrize(
        ("run_type", "queued_at", "alert"),
        [
            ("scheduled", DEADLINE - timedelta(minutes=50), True),  # queued at the hour's end, still running
            ("manual", DEADLINE - timedelta(seconds=1), True),
            ("asset_triggered", DEADLINE - timedelta(minutes=5), True),
            ("manual", DEADLINE, False),  # a re-run queued exactly at its deadline
            ("scheduled", DEADLINE + timedelta(days=3), True),  # made after a scheduler outage: the hour was late
            ("asset_triggered", DEADLINE + timedelta(hours=1), False),
            ("manual", DEADLINE + timedelta(days=7), False),  # a re-run of last week's hour
            ("backfill", DEADLINE + timedelta(days=7), False),
            ("backfill", DEADLINE - timedelta(minutes=10), False),  # a backfill is never "late"
            ("scheduled", None, True),  # unknown queue time: the alert is not hidden
        ],
    )
    def test_only_runs_queued_before_their_deadline_and_not_backfills_are_late(self, run_type, queued_at, alert):
        assert alerts.late_verdict(run_type, queued_at, DEADLINE).alert is alert

    @pytest.mark.parametrize(
        ("run_type", "state", "alert"),
        [
            ("manual", "failed", False),  # queued in time, ended failed before its deadline: "failed" said it
            ("scheduled", "failed", False),
            ("asset_triggered", "failed", False),
            ("scheduled", "running", True),  # still not done, a task may have failed already: late
            ("manual", "running", True),
            ("scheduled", "queued", True),  # never started: late
            ("scheduled", None, True),  # unknown state: the alert is not hidden
        ],
    )
    def test_a_run_that_already_ended_failed_is_not_late_again(self, run_type, state, alert):
        """Airflow 3.3 drops a deadline only on success: a failed hour's deadline still fires."""
        queued = DEADLINE - timedelta(minutes=50)
        assert alerts.late_verdict(run_type, queued, DEADLINE, state=state).alert is alert

    def test_reads_the_executors_json_iso_text_and_the_enum(self):
        from airflow.utils.types import DagRunType

        assert alerts.late_verdict(DagRunType.BACKFILL_JOB, None, None).alert is False
        assert alerts.late_verdict("manual", "2026-11-24T11:49:59Z", "2026-11-24T11:50:00+00:00").alert is True
        assert alerts.late_verdict("manual", "2026-11-24T13:50:01+02:00", DEADLINE).alert is False  # 11:50:01Z
        assert alerts.late_verdict("manual", "2026-11-24T11:50:01", DEADLINE).alert is False  # naive = UTC
        from airflow.utils.state import DagRunState

        assert alerts.late_verdict("manual", "2026-11-24T11:00:00Z", DEADLINE, DagRunState.FAILED).alert is False
        assert alerts.late_verdict("manual", "2026-11-24T11:00:00Z", DEADLINE, DagRunState.RUNNING).alert is True

    @pytest.mark.parametrize(
        ("run_type", "queued_at", "why"),
        [
            ("backfill", "2026-12-01T00:00:00Z", "backfill run re-processes an old hour"),
            ("manual", "2026-11-27T09:00:00Z", "queued at 2026-11-27T09:00:00+00:00, after its deadline"),
        ],
    )
    def test_the_callback_sends_nothing_for_them_and_logs_why(self, sinks, caplog, run_type, queued_at, why):
        with caplog.at_level("INFO", logger=alerts.__name__):
            alerts.notify_deadline_missed(context=late_context(run_type, queued_at))
        assert sinks.mails == [] and sinks.posts == []
        assert f"No late alert for customer_enrichment run {run_type}__" in caplog.text and why in caplog.text

    def test_the_callback_sends_nothing_for_a_run_that_ended_failed_and_logs_why(self, sinks, caplog):
        with caplog.at_level("INFO", logger=alerts.__name__):
            alerts.notify_deadline_missed(context=late_context("manual", "2026-11-24T11:49:30Z", state="failed"))
        assert sinks.mails == [] and sinks.posts == []
        assert "No late alert for customer_enrichment run manual__" in caplog.text
        assert "had already ended failed when its deadline passed" in caplog.text

    def test_the_callback_sends_for_a_run_queued_in_time(self, sinks, caplog):
        with caplog.at_level("INFO", logger=alerts.__name__):
            alerts.notify_deadline_missed(context=late_context("scheduled", "2026-11-24T11:00:02Z"))
        assert len(sinks.mails) == 1 and len(sinks.posts) == 1
        assert "Late alert for customer_enrichment run scheduled__" in caplog.text


class TestDeadlineSetting:
    def test_default_is_fifty_minutes_after_the_interval_ends(self, monkeypatch):
        monkeypatch.delenv(alerts.HOUR_DEADLINE_ENV, raising=False)
        assert alerts.hour_deadline().interval == timedelta(hours=1, minutes=50)

    def test_off_means_no_deadline(self, monkeypatch):
        monkeypatch.setenv(alerts.HOUR_DEADLINE_ENV, " OFF ")
        assert alerts.hour_deadline() is None

    @pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
    def test_a_bad_value_fails_naming_the_setting(self, monkeypatch, value):
        monkeypatch.setenv(alerts.HOUR_DEADLINE_ENV, value)
        with pytest.raises(ValueError, match=alerts.HOUR_DEADLINE_ENV):
            alerts.hour_deadline()


class TestWiring:
    def test_every_task_has_the_policy_and_the_alert_and_parsing_loads_no_provider(self):
        """In a fresh interpreter (nothing imported before): parse dags/, report what each task carries."""
        import json
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        probe = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from tricloud.alerts import FailureAlert
from tricloud.retries import RETRY_POLICY
bag = DagBag(sys.argv[1])
out = {"errors": sorted(bag.import_errors), "dags": {}}
for d in bag.dags.values():
    out["dags"][d.dag_id] = {
        "without_policy": [t.task_id for t in d.tasks if t.retry_policy is not RETRY_POLICY],
        "without_alert": [t.task_id for t in d.tasks
                          if not any(isinstance(c, FailureAlert) for c in (t.on_failure_callback or []))],
        "deadline": [(a.interval.total_seconds(), a.callback.path) for a in (d.deadline or [])],
    }
heavy = ("botocore", "google.cloud.storage", "azure.storage.blob", "aiohttp", "aiosmtpd",
         "airflow.providers.smtp.notifications.smtp", "airflow.providers.http.notifications.http")
out["loaded"] = [m for m in heavy if m in sys.modules]
print(json.dumps(out))
"""
        env = {**os.environ, "PYTHONPATH": f"{root / 'plugins'}{os.pathsep}{root}"}
        env.pop("TRICLOUD_HOUR_DEADLINE_MINUTES", None)
        done = subprocess.run(
            [sys.executable, "-c", probe, str(root / "dags")], capture_output=True, text=True, env=env, check=True
        )
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["errors"] == []
        for dag_id in ("customer_enrichment", "athlete_age_by_year", "customer_daily_report"):
            assert out["dags"][dag_id]["without_policy"] == [], dag_id
            assert out["dags"][dag_id]["without_alert"] == [], dag_id
        assert out["dags"]["customer_enrichment"]["deadline"] == [[6600.0, "tricloud.alerts.notify_deadline_missed"]]
        assert out["loaded"] == []
