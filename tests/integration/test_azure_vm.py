"""The ``azure-vm`` backend on a real multi-host Spark standalone cluster (issue 17, sections 2 and 4).

Three hosts, each in its own network namespace with its own IP on a private bridge
(:mod:`tests.support.netns`): ``spark-master``, ``spark-w1``, ``spark-w2``. They are "Azure VMs" of
the local ARM fake (:mod:`tests.support.azure_arm`): the backend starts and deallocates them through
the microsoft-azure provider's unchanged ``AzureComputeHook``, and "starting" a VM runs its image's boot
service (``include.spark_service``) in its namespace. This machine's root namespace is the Airflow
worker: the driver runs here, on the bridge's private address.

The lake is this machine's file system, so its path is the same on every host, as a shared mount
(NFS, Azure Files, a blob mount) would be on real VMs: executors on both workers read and write it.

Skipped, with the reason, only where network namespaces cannot be made (not root, no netns).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from include import generate, lake
from stack.ports import free_port
from tests.support.azure_arm import FakeArm
from tests.support.azure_vm_cluster import CONN_ID, RESOURCE_GROUP, VMS, AzureVmCluster, backend_env, open_cluster
from tests.support.dag_test import dag_for_test
from tests.support.lake_checks import assert_every_row_accounted_once
from tests.support.netns import netns_permitted
from tests.support.waiting import wait_for
from tricloud import settings
from tricloud.cluster import JobState, SparkJob, backend_from_settings, job_key
from tricloud.operators import SparkJobOperator, StartClusterOperator, StopClusterOperator
from tricloud.spark_conf import SHORT_JOB_CONF

pytestmark = [pytest.mark.spark, pytest.mark.spark_submit]
HOUR = "2026-11-24T10:00:00+00:00"
HOUR_END = "2026-11-24T11:00:00+00:00"
WORKERS = (VMS["w1"], VMS["w2"])

#: Both workers take part: one single-core executor on each, tasks only once both registered, and
#: enough shuffle partitions (AQE off, so they are not coalesced into one) for tasks on both.
TWO_HOSTS_CONF = {
    **SHORT_JOB_CONF,
    "spark.cores.max": "2",
    "spark.executor.cores": "1",
    "spark.executor.memory": "512m",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    "spark.sql.adaptive.enabled": "false",
    # Reduce tasks would all wait (3 s each) for the one executor that holds the map output.
    "spark.locality.wait": "0s",
    "spark.sql.shuffle.partitions": "6",
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",
}
#: A lost host noticed in seconds rather than Spark's two minutes (heartbeats, their check, fetches).
FAST_LOSS_CONF = {
    "spark.executor.heartbeatInterval": "1s",
    "spark.network.timeout": "10s",
    "spark.network.timeoutInterval": "2s",
    "spark.shuffle.io.maxRetries": "1",
    "spark.shuffle.io.retryWait": "1s",
    # A retry while w1 is still lost: go on with the one worker left rather than wait two minutes for it.
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "5s",
}


class FakeTI:
    """Only what StopClusterOperator reads from its context: the start task's XCom."""

    def __init__(self, value):
        self.value = value

    def xcom_pull(self, task_ids):
        return self.value


@pytest.fixture(scope="module")
def vms(tmp_path_factory):
    """The network, the ARM fake and its three deallocated VMs; everything removed even after a failure."""
    reason = netns_permitted()
    if reason:
        pytest.skip(reason)
    cluster = open_cluster(tmp_path_factory.mktemp("azure-vm"))
    try:
        yield cluster
    finally:  # runs after a failed test too: kills every process in the namespaces, deletes them and the bridge
        cluster.close()


@pytest.fixture
def azure(vms, monkeypatch) -> AzureVmCluster:
    """The backend's connections and the SDK's route to the fake, for one test."""
    for name, value in vms.env.items():
        monkeypatch.setenv(name, value)
    return vms


def plain(address: str) -> str:
    """``10.1.2.3`` from ``10.1.2.3``, ``[::ffff:10.1.2.3]`` (Java's dual-stack sockets) or ``::ffff:10.1.2.3``."""
    return address.strip("[]").removeprefix("::ffff:")


def power(vms: AzureVmCluster) -> dict[str, str]:
    return {vm: vms.arm.vm(RESOURCE_GROUP, vm).power for vm in VMS.values()}


def get_json(url: str) -> dict | list | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):  # not up yet, or its "Spark is starting up" page (not JSON)
        return None


class TestControlPlane:
    def test_a_vm_missing_from_the_resource_group_fails_naming_it_before_any_start(self, tmp_path, monkeypatch):
        arm = FakeArm(tmp_path).start()
        try:
            arm.add_vm(RESOURCE_GROUP, VMS["master"])
            arm.add_vm(RESOURCE_GROUP, VMS["w1"])  # spark-w2 was never created (or was deleted)
            env = backend_env(arm, "10.255.255.4", "s3cret", driver_host="10.255.255.9")
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            with pytest.raises(ValueError, match="VM 'spark-w2' is not in resource group 'rg-tricloud'"):
                backend_from_settings(conn_id=CONN_ID).start(timeout=5)
            assert not [call for call in arm.calls if call[0] == "POST"]  # nothing was started
            assert arm.calls[("GET", VMS["master"], "instanceView")] == 1  # the hook did reach the fake
        finally:
            arm.close()


class TestLifecycle:
    def test_start_powers_on_only_stopped_vms_and_teardown_deallocates_only_those(self, azure):
        arm = azure.arm
        arm.power_on(arm.vm(RESOURCE_GROUP, VMS["master"]))  # someone else's, running when we came
        for vm in WORKERS:
            arm.power_off(arm.vm(RESOURCE_GROUP, vm))
        arm.calls.clear()

        info = StartClusterOperator(task_id="start_cluster", conn_id=CONN_ID, workers=2).execute({})

        assert info["started"] is True
        assert info["master_url"] == f"spark://{azure.ip('master')}:7077"
        assert sorted(info["details"]["started_vms"]) == sorted(WORKERS)
        started = {vm for (method, vm, action) in arm.calls if (method, action) == ("POST", "start")}
        assert started == set(WORKERS)  # the running master was not started again
        state = get_json(f"http://{azure.ip('master')}:8080/json/")
        assert sorted(w["host"] for w in state["workers"] if w["state"] == "ALIVE") == sorted(
            [azure.ip("w1"), azure.ip("w2")]
        )  # each worker registered from its own host

        again = StartClusterOperator(task_id="start_cluster", conn_id=CONN_ID, workers=2).execute({})
        assert again["started"] is False  # reused
        assert sum(n for (method, _, action), n in arm.calls.items() if action == "start") == 2

        stop = StopClusterOperator(task_id="stop_cluster", conn_id=CONN_ID)
        assert stop.execute({"ti": FakeTI(again)}) is False  # that "run" started nothing
        assert stop.execute({"ti": FakeTI(info)}) is True
        assert power(azure) == {VMS["master"]: "running", VMS["w1"]: "deallocated", VMS["w2"]: "deallocated"}
        assert azure.net.pids("w1") == [] and azure.net.pids("w2") == []  # the workers' JVMs went with them
        assert azure.net.pids("master") != []  # not ours: left running
        assert stop.execute({"ti": FakeTI(info)}) is False  # a cleared teardown: already gone is success

    def test_a_start_that_does_not_come_up_deallocates_what_it_started(self, azure):
        arm = azure.arm
        for vm in VMS.values():
            arm.power_off(arm.vm(RESOURCE_GROUP, vm))
        backend = backend_from_settings(conn_id=CONN_ID)
        with pytest.raises(TimeoutError, match="not ready after") as err:
            backend.start(timeout=0)  # no boot is that fast
        assert "0/2 workers alive" in str(err.value) or "does not answer" in str(err.value)
        assert set(power(azure).values()) == {"deallocated"}
        assert all(azure.net.pids(host) == [] for host in VMS)  # nothing left running

    def test_nothing_listens_beyond_each_hosts_private_address(self, azure):
        backend_from_settings(conn_id=CONN_ID).start(timeout=180)
        for host in VMS:
            listening = azure.net.listening(host)
            assert listening, f"nothing listens on {host}"
            assert {plain(a.rsplit(":", 1)[0]) for a in listening} == {azure.ip(host)}, (host, listening)


def event_log_hosts(event_dir: Path) -> tuple[set[str], set[str]]:
    """(hosts of executors added, hosts of successful tasks) from the driver's event log."""
    executors, tasks = set(), set()
    # Spark 4 writes a rolling event log: a directory ``eventlog_v2_<app>`` of ``events_<n>_<app>`` files.
    files = [p for entry in event_dir.iterdir() for p in (sorted(entry.iterdir()) if entry.is_dir() else [entry])]
    for path in files:
        if path.is_dir() or path.name.startswith("appstatus"):
            continue
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:  # the last line of a driver killed mid-write
                continue
            if event["Event"] == "SparkListenerExecutorAdded":
                executors.add(event["Executor Info"]["Host"])
            elif event["Event"] == "SparkListenerTaskEnd" and event["Task End Reason"]["Reason"] == "Success":
                tasks.add(event["Task Info"]["Host"])
    return executors, tasks


def hour_rows(root: Path) -> dict[str, list]:
    """Every clean and rejected row of the hour, sorted (row order within a file is not the point)."""
    out = {}
    for dataset in (lake.CLEAN_CUSTOMERS, lake.REJECTS_CUSTOMERS):
        table = pq.read_table(lake.partition(root, dataset, HOUR).path / "part-00000.parquet")
        out["/".join(dataset)] = sorted(map(repr, table.to_pylist()))
    return out


def ingest(root: Path, conf: dict, conn_id: str | None = None) -> SparkJobOperator:
    return SparkJobOperator(
        task_id="ingest_customer_data",
        application=settings.job_path("ingest_customers"),
        application_args=["--lake-root", str(root), "--start", HOUR, "--end", HOUR_END],
        conf=conf,
        conn_id=conn_id,
    )


class TestMultiHost:
    def test_tasks_run_on_both_workers_and_the_rows_equal_the_single_host_run(
        self, spark_cluster, azure, tmp_path, monkeypatch
    ):
        single, multi, events = tmp_path / "single", tmp_path / "multi", tmp_path / "events"
        events.mkdir()
        for root in (single, multi):
            generate.generate_hour(root, HOUR, rows=3000, products=200)
        monkeypatch.setenv("TRICLOUD_CLUSTER_BACKEND", "local")
        ingest(single, SHORT_JOB_CONF).execute({})  # the session's single-host cluster
        monkeypatch.setenv("TRICLOUD_CLUSTER_BACKEND", "azure-vm")
        backend_from_settings(conn_id=CONN_ID).start(timeout=180)

        result = ingest(multi, {**TWO_HOSTS_CONF, "spark.eventLog.dir": str(events)}, CONN_ID).execute({})

        executors, task_hosts = event_log_hosts(events)
        assert executors == task_hosts == {azure.ip("w1"), azure.ip("w2")}
        assert hour_rows(multi) == hour_rows(single)
        assert result["rows_in"] == 3000

    def test_a_worker_cut_off_mid_job_the_job_ends_and_the_retry_has_every_row_once(self, azure, tmp_path):
        rows, events = 20000, tmp_path / "events"
        events.mkdir()
        root = tmp_path / "lake"
        generate.generate_hour(root, HOUR, rows=rows, products=300)
        backend = backend_from_settings(conn_id=CONN_ID)
        backend.start(timeout=180)
        ui_port = free_port()
        conf = {**TWO_HOSTS_CONF, **FAST_LOSS_CONF, "spark.eventLog.dir": str(events), "spark.ui.port": str(ui_port)}
        driver_ui = f"http://{azure.net.gateway}:{ui_port}"

        def job(try_number: int) -> SparkJob:
            key = job_key("azure_vm_cut", "ingest_customer_data", f"run-{tmp_path.name}", try_number=try_number)
            return SparkJob(
                key=key,
                name=key,
                application=settings.job_path("ingest_customers"),
                args=("--lake-root", str(root), "--start", HOUR, "--end", HOUR_END),
                result_uri=str(root / "_jobs" / key / "metrics.json"),
                conf=conf,
            )

        first = job(1)
        handle = backend.submit(first)
        try:
            # The moment w1's executor has taken tasks of this job (the driver's REST API), its link goes down.
            wait_for(lambda: busy_executors(driver_ui, azure.ip("w1")), 180, "tasks on w1")
            driver = driver_process(first.name)
            azure.net.cut("w1")
            assert backend.job_status(handle).state.active  # really mid-job
            listening = {plain(c.laddr.ip) for c in driver.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
            # The driver too listens on the private address only (and py4j's gateway on loopback).
            assert listening - {"127.0.0.1"} == {azure.net.gateway}, listening
            status = wait_for(lambda: (s := backend.job_status(handle)).state.terminal and s, 300, "the job")
            if status.state is not JobState.SUCCEEDED:
                assert status.state is JobState.FAILED and status.message  # failed clearly, saying why
                retry = backend.submit(job(2))
                status = wait_for(lambda: (s := backend.job_status(retry)).state.terminal and s, 300, "the retry")
                assert status.state is JobState.SUCCEEDED, backend.driver_error(retry, status)
        finally:
            azure.net.restore("w1")
        assert_every_row_accounted_once(root, lake.parse_hour(HOUR), rows)
        executors, _ = event_log_hosts(events)
        assert azure.ip("w1") in executors  # w1 did take part before it was cut off


def busy_executors(driver_ui: str, ip: str) -> list[dict]:
    """Executors on host ``ip`` running tasks now, from the driver's REST API."""
    found = []
    for app in get_json(f"{driver_ui}/api/v1/applications") or []:
        for executor in get_json(f"{driver_ui}/api/v1/applications/{app['id']}/executors") or []:
            if executor["hostPort"].startswith(f"{ip}:") and executor["activeTasks"]:
                found.append(executor)
    return found


def driver_process(name: str) -> psutil.Process:
    """The driver JVM (spark-submit, client mode) of the application ``name``."""

    def find():
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if "org.apache.spark.deploy.SparkSubmit" in cmd and name in cmd:
                return p
        return None

    return wait_for(find, 60, f"the driver of {name}")


class TestCustomerEnrichmentHour:
    """The DAG file every deployment runs, unchanged, with ``TRICLOUD_CLUSTER_BACKEND=azure-vm``."""

    def test_the_hour_runs_on_the_vms_and_teardown_deallocates_what_it_started(
        self, azure, emulators, tmp_path, monkeypatch
    ):
        import pendulum

        from tests.support import reference

        arm = azure.arm
        for vm in VMS.values():  # a deployment at rest: every VM deallocated
            arm.power_off(arm.vm(RESOURCE_GROUP, vm))
        arm.calls.clear()
        root = tmp_path / "lake"  # the same path on every host, as a shared mount would be (module docstring)
        gen = generate.generate_hour(root, lake.parse_hour(HOUR), rows=2000, products=100)
        monkeypatch.setenv("LAKE_ROOT", str(root))
        monkeypatch.setenv(
            "AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.sqlite")})
        )
        dag = dag_for_test("customer_enrichment")

        # A manual run's interval ends at its logical date: 11:00 processes [10:00, 11:00).
        dr = dag.test(logical_date=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))

        states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        assert dr.state == "success", states
        started = {vm for (method, vm, action) in arm.calls if (method, action) == ("POST", "start")}
        assert VMS["master"] in started and started & set(WORKERS)  # start_cluster started the VMs
        assert set(power(azure).values()) == {"deallocated"}  # stop_cluster deallocated what it started
        orders, _ = reference.clean_customers(gen.customer_file, lake.parse_hour(HOUR))
        clean = pq.read_table(lake.partition(root, lake.CLEAN_CUSTOMERS, HOUR).path / "part-00000.parquet")
        assert clean.num_rows == len(orders)  # computed from the raw file, not by the job
        assert_every_row_accounted_once(root, lake.parse_hour(HOUR), 2000)
