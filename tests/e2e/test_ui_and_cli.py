"""The product as people meet it: the web UI in a real browser, `airflow dags trigger`, the REST API.

Runs the embedded stack for real (Airflow's api-server, scheduler, dag-processor and triggerer, the Spark cluster,
the three storage emulators) in a private Airflow home on its own port, so a running `make demo` is
not disturbed. Headless Chromium and ChromeDriver come from Debian (`make test` installs them).

Screenshots go to ``$TRICLOUD_SCREENSHOTS`` (default: ``screenshots/`` in the session's world state dir,
removed with it unless ``TRICLOUD_KEEP_TEST_STATE`` is set; never the checkout's ``.stack/``);
`make screenshots` refreshes the ones in ``docs/screenshots/`` that the README shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include import generate, lake
from include.replication import manifest_key
from stack import config
from tests.support.stack import DAG_ID, private_stack, task_states, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.ui]

UI_HOUR = datetime(2026, 11, 20, 5, tzinfo=UTC)  # triggered from the browser with the `hour` param
CLI_HOUR = datetime(2026, 11, 20, 6, tzinfo=UTC)  # triggered with `airflow dags trigger --logical-date`
ROWS = 2000
SUBMIT = "[data-testid=trigger-dag-submit]"  # the trigger form's own button
SHOTS = Path(os.environ.get("TRICLOUD_SCREENSHOTS") or Path(os.environ["TRICLOUD_STATE_DIR"]) / "screenshots")


@pytest.fixture(scope="module")
def ui_stack(spark_cluster, emulators):
    # The scheduler runs for real (the daily report is started by the hours' partitioned asset events),
    # so it also starts the latest hour on its own: give that hour input too, and the other two hours
    # ours. The report waits for a day's 24 hours by default; here two hours of a day are enough
    # (at most 22 missing), so the two hours of 2026-11-20 start it.
    root = Path(os.environ["LAKE_ROOT"])
    latest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for hour in {latest, latest - timedelta(hours=1), UI_HOUR, CLI_HOUR}:
        generate.generate_hour(root, hour, rows=ROWS, products=200)
    # A distinctive dummy secret (moto accepts any), so the masking test cannot pass by accident.
    aws = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"]) | {"password": "Tr1cloud-mask-canary-5e1f"}
    with private_stack(
        "test-ui-airflow", AIRFLOW_CONN_AWS_DEFAULT=json.dumps(aws), TRICLOUD_REPORT_MAX_MISSING_HOURS="22"
    ) as stack:
        stack[1].wait_for_dag("customer_daily_report")
        yield stack


def assert_hour_published(root: Path, hour: datetime) -> dict:
    summary = lake.read_json(lake.partition(root, lake.ENRICHED_CUSTOMERS, hour).path / lake.SUMMARY_FILE)
    cust = summary["upstream"]["customer_activity"]
    assert cust["rows_in"] == ROWS and cust["rows_clean"] + cust["rows_rejected"] == ROWS
    assert summary["customers_out"] > 0
    assert (root / manifest_key(hour)).is_file()  # replicated and verified in three clouds (the manifest comes last)
    return summary


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_until(predicate, timeout: float, what: str, driver=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # the React UI re-renders: stale or missing elements are retried
            value = None
        if time.monotonic() > deadline:
            if driver is not None:  # what the browser showed instead
                driver.save_screenshot(str(SHOTS / "timeout.png"))
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def buttons(driver, label: str, scope: str = ""):
    from selenium.webdriver.common.by import By

    return [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, f"{scope} button".strip())
        if b.is_displayed() and label in (b.text.strip(), b.get_attribute("aria-label"))
    ]


class TestWebUI:
    def test_login_trigger_an_hour_watch_it_succeed_and_read_the_spark_log(self, ui_stack, browser):
        from selenium.webdriver.common.by import By

        airflow, client, _, root = ui_stack
        d = browser
        d.get(f"{airflow.url}/dags/{DAG_ID}")
        # Login is required: the UI sends us to the login form first.
        wait_until(lambda: d.find_elements(By.NAME, "username"), 30, "the login form", d)
        assert "/auth/login" in d.current_url
        d.find_element(By.NAME, "username").send_keys("admin")
        d.find_element(By.NAME, "password").send_keys(airflow.admin_password())
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: buttons(d, "Trigger Dag"), 60, "the DAG page", d)
        d.save_screenshot(str(SHOTS / "01-dag.png"))

        # A bad hour is refused by the form's schema: nothing runs.
        runs_before = client.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"]
        buttons(d, "Trigger Dag")[0].click()
        field = wait_until(lambda: d.find_element(By.NAME, "element_hour"), 30, "the hour field", d)
        field.send_keys("2026-11-20T05:30:00+00:00")
        d.find_element(By.CSS_SELECTOR, SUBMIT).click()
        page = wait_until(
            lambda: "Invalid input for param hour" in (t := d.find_element(By.TAG_NAME, "body").text) and t,
            30,
            "the form's validation error",
            d,
        )
        assert "does not match" in page
        d.save_screenshot(str(SHOTS / "02-trigger-form-refuses-bad-hour.png"))
        assert client.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"] == runs_before

        # The same form with a whole hour triggers a run for that hour.
        field = d.find_element(By.NAME, "element_hour")
        field.clear()
        field.send_keys(UI_HOUR.isoformat())
        # The error toast of the refused attempt covers the button for a few seconds.
        wait_until(lambda: not d.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-state=open]"), 30, "toasts", d)
        d.find_element(By.CSS_SELECTOR, SUBMIT).click()

        def ui_run():
            runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?order_by=-run_after")["dag_runs"]
            return next(
                (r["dag_run_id"] for r in runs if (r.get("conf") or {}).get("hour") == UI_HOUR.isoformat()), None
            )

        run_id = wait_until(ui_run, 30, "the run triggered from the UI")
        state = wait_for_run(client, run_id)
        assert state == "success", task_states(client, run_id)
        assert_hour_published(root, UI_HOUR)

        # The run page shows it green; the graph view shows every task.
        d.get(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}")
        wait_until(lambda: "success" in d.find_element(By.TAG_NAME, "body").text.lower(), 60, "the run's state", d)
        time.sleep(2)  # let the grid finish drawing for the screenshot
        d.save_screenshot(str(SHOTS / "03-run-succeeded.png"))

        # The Spark task's log holds the driver's own output (the job logs its metrics line).
        d.get(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}/tasks/ingest_customer_data")
        body = wait_until(
            lambda: "metrics:" in (t := d.find_element(By.TAG_NAME, "body").text) and t,
            90,
            "the Spark driver output in the task log",
            d,
        )
        assert f'"rows_in": {ROWS}' in body
        d.save_screenshot(str(SHOTS / "04-task-log-spark-driver.png"))

    def test_extra_links_point_at_the_spark_uis(self, ui_stack):
        _, client, _, _ = ui_stack
        runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?state=success")["dag_runs"]
        assert runs, "needs the run of the previous test"
        run_id = runs[0]["dag_run_id"]
        links = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/links")[
            "extra_links"
        ]
        master = os.environ["SPARK_MASTER_WEBUI_PORT"]  # the world's own (tests/conftest.py)
        assert links["Spark master UI"] == f"http://127.0.0.1:{master}"
        assert links["Spark application"].startswith(f"http://127.0.0.1:{master}/app/?appId=app-")
        assert links["Cluster console"] == f"http://127.0.0.1:{master}"  # the backend's console: the master UI
        assert links["Driver log"], "the local driver log's location"
        start = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/start_cluster/links")["extra_links"]
        assert start == {
            "Spark master UI": f"http://127.0.0.1:{master}",
            "Cluster console": f"http://127.0.0.1:{master}",
        }


class TestCLIAndRest:
    def test_airflow_dags_trigger_an_hour_reaches_success(self, ui_stack):
        _, client, env, root = ui_stack
        logical = CLI_HOUR + timedelta(hours=1)  # a manual run processes the hour ending at its logical date
        run_id = f"cli__{CLI_HOUR:%Y-%m-%dT%H}"
        out = subprocess.run(
            ["airflow", "dags", "trigger", DAG_ID, "--logical-date", logical.isoformat(), "--run-id", run_id],
            env={**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        state = wait_for_run(client, run_id)
        assert state == "success", task_states(client, run_id)
        # The hour ending at the logical date was processed (Airflow 3.3's CLI infers the run's data
        # interval from the trigger time; tricloud.hours goes by the logical date, as documented).
        xcom = client.call(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_customer_data/xcomEntries/return_value"
        )["value"]
        assert xcom["hour"] == CLI_HOUR.isoformat()
        assert_hour_published(root, CLI_HOUR)

    def test_rest_api_refuses_bad_params_before_anything_runs(self, ui_stack):
        _, client, _, _ = ui_stack
        before = client.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"]
        with pytest.raises(RuntimeError, match="HTTP 400.*Invalid input for param hour"):
            client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"hour": "yesterday"}})
        with pytest.raises(RuntimeError, match="HTTP 400"):
            client.call(
                "POST",
                "/dags/restore_lake/dagRuns",
                {"logical_date": None, "conf": {"source": "dropbox", "target": "local"}},
            )
        assert client.call("GET", f"/dags/{DAG_ID}/dagRuns")["total_entries"] == before

    def test_replicated_hours_start_the_daily_report_through_the_asset(self, ui_stack):
        _, client, _, root = ui_stack
        from include.reports import report_path

        # Both hours of 2026-11-20 were replicated above; their partitioned asset events start the report
        # of that day (the stack allows 22 missing hours).
        path = report_path(root, UI_HOUR.date())
        wait_until(
            lambda: path.exists() and lake.read_json(path)["hours_processed"] == 2, 300, "the report of both hours"
        )
        runs = client.call("GET", "/dags/customer_daily_report/dagRuns")["dag_runs"]
        assert runs and all(r["run_type"] == "asset_triggered" for r in runs)
        assert f"{UI_HOUR:%Y-%m-%d}" in {r["partition_key"] for r in runs}  # one run per day, keyed by it
        for r in runs:
            assert wait_for_run(client, r["dag_run_id"], "customer_daily_report") == "success"
        report = lake.read_json(path)
        expected = sum(assert_hour_published(root, h)["customers_out"] for h in (UI_HOUR, CLI_HOUR))
        assert report["customer_hours"] == expected
        events = client.call("GET", "/assets/events?limit=100")["asset_events"]
        replicated = {e["extra"].get("hour") for e in events if e["uri"] == "x-tricloud://replicas/customer_enrichment"}
        assert {UI_HOUR.isoformat(), CLI_HOUR.isoformat()} <= replicated


class TestSecurityDefaults:
    def test_api_requires_a_token(self, ui_stack):
        import urllib.error
        import urllib.request

        airflow, _, _, _ = ui_stack
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{airflow.url}/api/v2/dags", timeout=10)
        assert err.value.code == 401

    def test_every_listening_socket_of_the_stack_is_on_loopback(self, ui_stack, spark_cluster, emulators):
        import psutil

        airflow, _, _, _ = ui_stack
        roots = [*airflow.pids(), *(p.pid() for p in emulators.values())]
        roots += [int(f.read_text()) for f in (Path(spark_cluster.details["state_dir"])).glob("*.pid")]
        pids = set()
        for pid in filter(None, roots):
            proc = psutil.Process(pid)
            pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
        listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
        assert len(listening) >= 7  # api-server, Spark master and worker (+ their UIs), three emulators
        exposed = [(c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()) for c in listening]
        assert [e for e in exposed if e[0] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")] == []

    def test_connection_secrets_are_masked_in_task_logs(self, ui_stack):
        from stack.config import parse_env_file

        _, client, env, _ = ui_stack
        run_id = f"mask_{time.time_ns()}"
        client.call("POST", "/dags/check_connections/dagRuns", {"dag_run_id": run_id, "logical_date": None})
        assert wait_for_run(client, run_id, "check_connections", timeout=300) == "success", task_states(
            client, run_id, "check_connections"
        )
        secrets = {
            "aws password": json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["password"],
            "azure account key": parse_env_file(config.ENV_EXAMPLE)["AIRFLOW_CONN_WASB_DEFAULT"]
            .split("AccountKey=")[1]
            .split(";")[0],
        }
        for task_id in ("check_aws_default", "check_wasb_default"):
            log = json.dumps(
                client.call("GET", f"/dags/check_connections/dagRuns/{run_id}/taskInstances/{task_id}/logs/1")
            )
            assert f"Checking {task_id.removeprefix('check_')}" in log  # the task did log its connection
            assert "***" in log
            for what, value in secrets.items():
                assert value not in log, f"{what} leaked into the log of {task_id}"
