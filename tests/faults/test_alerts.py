"""A failed and a late hour, in a real Airflow, tell the on-call engineer by e-mail and webhook.

One manual run of an hour that has no input, created long after that hour's deadline
(``TRICLOUD_HOUR_DEADLINE_MINUTES``, default 50 after the interval ends):

- the ingest task fails on its **first try** (the shared retry policy, ``tricloud.retries``: a missing
  input is deterministic, no retry can bring it) and its ``on_failure_callback`` sends the failure alert;
- the scheduler finds the run's ``DeadlineAlert`` missed and the executor runs its callback: the late alert.

Both land in a real SMTP server (aiosmtpd) and a webhook receiver on 127.0.0.1 (tests/support/alert_sinks.py)
through the providers' SmtpNotifier and HttpNotifier and the connections ``smtp_default`` /
``tricloud_webhook`` of the shared fault Airflow; no secret of either connection appears in what was sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.stack import DAG_ID, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault]

#: A manual run's logical date is the END of the hour it processes (tricloud.hours.resolve_hour).
LOGICAL = datetime(2026, 3, 3, 5, tzinfo=UTC)
HOUR = LOGICAL - timedelta(hours=1)
RUN_ID = f"alerts_missing_{HOUR:%Y%m%dT%H}"


def wait_for(predicate, timeout: float, what: str, received=None):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s; received: {received and received()}"
        time.sleep(2)
    return found


def test_a_missing_hour_fails_on_try_one_and_alerts_failed_and_late(fault_airflow, alert_sinks):
    _, client, _, lake = fault_airflow
    assert not (lake / f"raw/customer_activity/date={HOUR:%Y-%m-%d}/hour={HOUR:%H}").exists()
    client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": RUN_ID, "logical_date": LOGICAL.isoformat()})
    assert wait_for_run(client, RUN_ID) == "failed"

    ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/ingest_customer_data")
    assert (ingest["state"], ingest["try_number"]) == ("failed", 1), "a missing input was retried"

    hour = HOUR.isoformat()
    failed_subject = f"[tricloud] {DAG_ID} hour {hour} failed: ingest_customer_data (try 1)"
    late_subject = f"[tricloud] {DAG_ID} hour {hour} late: run {RUN_ID}"

    def texts() -> list[str]:
        return [m["body"] for m in alert_sinks.mails] + [p["body"]["text"] for p in alert_sinks.posts if p["body"]]

    def both_channels(subject: str) -> list[str]:
        mails = [m["body"] for m in alert_sinks.mails if m["subject"].startswith(subject)]
        posts = [p["body"]["text"] for p in alert_sinks.posts if p["body"] and p["body"]["text"].startswith(subject)]
        return mails + posts if mails and posts else []

    def received() -> list[str]:
        return [f"mail: {m['subject']}" for m in alert_sinks.mails] + [
            f"post: {t[:120]}" for t in texts()[len(alert_sinks.mails) :]
        ]

    failed = wait_for(lambda: both_channels(failed_subject), 120, "failure alert on both channels", received)
    late = wait_for(lambda: both_channels(late_subject), 120, "deadline alert on both channels", received)
    for text in failed:
        assert f"DAG: {DAG_ID}" in text and f"Hour: {hour}" in text
        assert "Task: ingest_customer_data (try 1)" in text
        error = next(line for line in text.splitlines() if line.startswith("Error: "))
        assert error.startswith("Error: SparkJobDataError: Spark job ") and "failed on its input" in error
        assert f"/dags/{DAG_ID}/runs/{RUN_ID}/tasks/ingest_customer_data?try_number=1" in text
    for text in late:
        assert f"Hour: {hour}" in text and "not finished by its deadline" in text
        assert f"/dags/{DAG_ID}/runs/{RUN_ID}" in text
    for secret in alert_sinks.secrets:
        assert all(secret not in t for t in texts()), secret
        assert all(secret not in m["raw"] for m in alert_sinks.mails), secret
