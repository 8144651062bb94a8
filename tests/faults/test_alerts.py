"""A failed and a late hour, in a real Airflow, tell the on-call engineer by e-mail and webhook; a backfill
of an old hour is never "late", nor a run that already ended failed (its "failed" said it).

Airflow 3.3.2 makes a run's deadline when it creates the run, from its logical date
(``TRICLOUD_HOUR_DEADLINE_MINUTES``, default 50, after the hour ends: :func:`tricloud.alerts.hour_deadline`).

- A **manual run** of an hour that has no input, whose logical date puts its deadline :data:`LEAD` after
  it is queued. The test holds the hour's lease under a run Airflow does not know, so the run waits in
  ``claim_hour`` (running) however fast or slow the machine: the scheduler's deadline callback sends the
  late alert. Then the test releases the hour, the ingest task fails on its **first try** (the shared
  retry policy, ``tricloud.retries``: a missing input is deterministic) and its ``on_failure_callback``
  sends the failure alert.
- A **manual run whose ``hour`` is no hour** (``T25:00``, which the trigger form's pattern lets through):
  its first task fails at try 1 (``InputError``) within seconds, and its deadline passes
  :data:`FAILED_LEAD` after it is queued: the run has ended failed by then, so the deadline callback
  sends nothing and logs why (Airflow 3.3 drops a deadline only on success: one alert per problem).
- A **backfill** of last March's hour (no input either): its deadline passed long before the backfill
  was created, so the scheduler runs the deadline callback at once, and the callback sends *nothing*,
  saying why in its log (``tricloud.alerts.late_verdict``); the run's failure alert still goes out.

Alerts land in a real SMTP server (aiosmtpd) and a webhook receiver on 127.0.0.1 (tests/support/alert_sinks.py)
through the providers' SmtpNotifier and HttpNotifier and the connections ``smtp_default`` /
``tricloud_webhook`` of the shared fault Airflow; no secret of either connection appears in what was sent.
The decision itself (run type, queued at, deadline, run state) is unit-tested in tests/unit/test_alerts.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.lease import HourLease
from tests.support.stack import DAG_ID, wait_for_run
from tricloud import alerts

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.fault]

#: The hour the manual run processes (its ``hour`` param); it has no input.
HOUR = datetime(2026, 3, 3, 4, tzinfo=UTC)
RUN_ID = f"alerts_missing_{HOUR:%Y%m%dT%H}"
#: The hour the backfill re-processes (its logical date = the hour's start); no input either.
BACKFILL_HOUR = datetime(2026, 3, 3, 8, tzinfo=UTC)
#: How long after the manual run is queued its deadline falls (it waits for the hour's lease until then).
LEAD = timedelta(seconds=10)
#: A run whose first task fails at try 1: its ``hour`` matches the param's pattern but is no hour.
FAILED_RUN_ID = "alerts_no_hour"
BAD_HOUR = "2026-03-03T25:00:00+00:00"
#: How long after that run is queued its deadline falls: after it has failed (one task, seconds, even on a
#: loaded machine); the test waits for the missing hour's run meanwhile.
FAILED_LEAD = timedelta(seconds=60)


def wait_for(predicate, timeout: float, what: str, received=None):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s; received: {received and received()}"
        time.sleep(2)
    return found


def callback_logs(home: Path, run_id: str) -> str:
    """The text of the deadline callbacks' logs of one run (``executor_callbacks/<dag>/<run>/<id>``)."""
    marker = f"executor_callbacks/{DAG_ID}/{run_id}/"
    return "".join(p.read_text(errors="replace") for p in home.rglob("*") if p.is_file() and marker in str(p))


def logical_date_for(lead: timedelta, env: dict) -> datetime:
    """A manual run's logical date that puts its deadline ``lead`` from now: its deadline is the logical
    date + 1 h + the setting (alerts.hour_deadline); the hour it processes is its ``hour`` param."""
    minutes = float(env.get(alerts.HOUR_DEADLINE_ENV) or alerts.DEFAULT_HOUR_DEADLINE_MINUTES)
    return datetime.now(UTC) + lead - alerts.HOUR - timedelta(minutes=minutes)


def test_a_missing_hour_alerts_failed_and_late_a_backfill_of_an_old_hour_not_late(fault_airflow, alert_sinks):
    airflow, client, env, lake = fault_airflow
    for h in (HOUR, BACKFILL_HOUR):
        assert not (lake / f"raw/customer_activity/date={h:%Y-%m-%d}/hour={h:%H}").exists()
    # The hour held by a run Airflow does not know (freed only by its 1 h TTL or by us): the manual run
    # waits in claim_hour until the test has seen its late alert, whatever the machine's load.
    lease = HourLease(lake, DAG_ID, HOUR)
    blocker = lease.try_acquire(DAG_ID, "alerts_blocker", lambda d, r: "running", holder="test_alerts:1")
    assert blocker.acquired
    try:
        _alerts_of_a_failed_a_late_and_a_backfilled_hour(airflow, client, env, alert_sinks, lease, blocker)
    finally:
        lease.release(blocker.record.generation)


def _alerts_of_a_failed_a_late_and_a_backfilled_hour(airflow, client, env, alert_sinks, lease, blocker):

    # First, so its one task is scheduled first: the run that ends failed well before its deadline.
    client.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        {
            "dag_run_id": FAILED_RUN_ID,
            "logical_date": logical_date_for(FAILED_LEAD, env).isoformat(),
            "conf": {"hour": BAD_HOUR},
        },
    )
    # The backfill next: its deadline (the hour's end + the setting) is months gone when it is created.
    client.call(
        "POST",
        "/backfills",
        {"dag_id": DAG_ID, "from_date": BACKFILL_HOUR.isoformat(), "to_date": BACKFILL_HOUR.isoformat()},
    )
    # The logical date only places the deadline LEAD after the run is queued.
    client.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        {
            "dag_run_id": RUN_ID,
            "logical_date": logical_date_for(LEAD, env).isoformat(),
            "conf": {"hour": HOUR.isoformat()},
        },
    )
    assert wait_for_run(client, FAILED_RUN_ID) == "failed"
    claim = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{FAILED_RUN_ID}/taskInstances/claim_hour")
    assert (claim["state"], claim["try_number"]) == ("failed", 1), "an hour that is no hour was retried"
    [backfill] = client.call("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
    assert backfill["data_interval_start"].replace("Z", "+00:00") == BACKFILL_HOUR.isoformat()
    assert wait_for_run(client, backfill["dag_run_id"]) == "failed"

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

    hour, old = HOUR.isoformat(), BACKFILL_HOUR.isoformat()
    failed_subject = f"[tricloud] {DAG_ID} hour {hour} failed: ingest_customer_data (try 1)"
    late_subject = f"[tricloud] {DAG_ID} hour {hour} late: run {RUN_ID}"
    late = wait_for(lambda: both_channels(late_subject), 120, "deadline alert on both channels", received)
    assert lease.release(blocker.record.generation)  # now the run takes the hour and fails on its input
    assert wait_for_run(client, RUN_ID) == "failed"
    ingest = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/ingest_customer_data")
    assert (ingest["state"], ingest["try_number"]) == ("failed", 1), "a missing input was retried"
    failed = wait_for(lambda: both_channels(failed_subject), 120, "failure alert on both channels", received)
    for text in failed:
        assert f"DAG: {DAG_ID}" in text and f"Hour: {hour}" in text
        assert "Task: ingest_customer_data (try 1)" in text
        error = next(line for line in text.splitlines() if line.startswith("Error: "))
        assert error.startswith("Error: SparkJobDataError: Spark job ") and "failed on its input" in error
        assert f"/dags/{DAG_ID}/runs/{RUN_ID}/tasks/ingest_customer_data?try_number=1" in text
    for text in late:
        assert f"Hour: {hour}" in text and "not finished by its deadline" in text
        assert f"/dags/{DAG_ID}/runs/{RUN_ID}" in text
        # Late while still under way (waiting for the hour; the failure came after).
        assert f"run {RUN_ID} (state running)" in text or f"run {RUN_ID} (state queued)" in text

    # The run that had ended failed at its deadline: its failure alert went out, its deadline callback ran
    # and sent nothing, saying why.
    assert wait_for(
        lambda: [t for t in texts() if f"/runs/{FAILED_RUN_ID}/tasks/claim_hour?try_number=1" in t],
        60,
        "failure alert of the run without an hour",
        received,
    )
    ended = f"alert for {DAG_ID} run {FAILED_RUN_ID}"
    log = wait_for(
        lambda: ended in (text := callback_logs(airflow.home, FAILED_RUN_ID)) and text,
        90,
        "deadline callback log of the run that ended failed",
    )
    assert f"No late {ended}" in log and "had already ended failed when its deadline passed" in log
    assert [t for t in texts() if f"late: run {FAILED_RUN_ID}" in t] == [], "a failed run was also reported late"

    # The backfill's deadline callback ran (its verdict is in its log) and sent nothing, saying why.
    verdict = f"alert for {DAG_ID} run {backfill['dag_run_id']}"
    log = wait_for(
        lambda: verdict in (text := callback_logs(airflow.home, backfill["dag_run_id"])) and text,
        60,
        "deadline callback log of the backfill run",
    )
    assert [t for t in texts() if f"hour {old} late" in t] == [], "a backfill of an old hour was reported late"
    assert f"No late {verdict}" in log and "backfill run re-processes an old hour" in log
    assert both_channels(f"[tricloud] {DAG_ID} hour {old} failed: ingest_customer_data (try 1)")
    for secret in alert_sinks.secrets:
        assert all(secret not in t for t in texts()), secret
        assert all(secret not in m["raw"] for m in alert_sinks.mails), secret
