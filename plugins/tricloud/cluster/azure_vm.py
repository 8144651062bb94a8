"""The ``azure-vm`` backend: a Spark standalone cluster on Azure VMs that this backend powers on and off.

Cluster: the connection (:mod:`tricloud.cluster.azure_vm_settings`) names a resource group, a master
VM and worker VMs built from one image (Java 17, Python, the same pyspark as the Airflow workers) whose
boot service is ``python -m include.spark_service master|worker`` (:mod:`include.spark_service`).
:meth:`AzureVmBackend.start` asks the microsoft-azure provider's ``AzureComputeHook`` for each VM's
power state, starts (``start_instance``) every VM that is not running, waits until the master's JSON
endpoint (``http://<master>:<webui_port>/json/``) lists every worker alive, and returns the master URL.
The VMs it started are its ``cluster_id`` (``<resource group>:<vm>,<vm>``); :meth:`stop` deallocates
those (``stop_instance``) and nothing else: a VM that was running when we came is left running, a VM
already deallocated or deleted is success. A start that does not come up deallocates what it started
before it raises.

Jobs: exactly as the ``local`` backend (:class:`~tricloud.cluster.local_jobs.LocalJobsMixin`):
spark-submit in client deploy mode through the provider's ``SparkSubmitHook`` in a detached runner on
this Airflow worker, so the driver runs here and its executors on the VMs. Each job gets
``spark.driver.host`` / ``spark.driver.bindAddress`` and ``SPARK_LOCAL_IP`` = this worker's private IP
(driver RPC, block manager and the driver's UI bind there, not on every interface), and
``SPARK_CONF_DIR`` pointing at a ``spark-defaults.conf`` (mode 0600) with ``spark.authenticate`` and
the connection's secret: the secret is never on a command line or in the job's record.

Network layout (README "Run on Azure"): one VNet subnet holds the Airflow workers and the cluster VMs;
none has a public IP; the NSG allows the subnet to itself only. Master RPC 7077 and UI 8080 listen on
the master's private IP, workers' UIs and executors on theirs, the driver on the Airflow worker's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tricloud import settings as tricloud_settings
from tricloud.cluster.azure_vm_settings import AzureVmSettings, azure_vm_settings
from tricloud.cluster.base import ClusterBackend, ClusterInfo, ClusterStatus, JobHandle, SparkJob
from tricloud.cluster.local_jobs import LocalJobsMixin
from tricloud.cluster.standalone import cluster_status, master_state

if TYPE_CHECKING:
    from airflow.providers.microsoft.azure.hooks.compute import AzureComputeHook

log = logging.getLogger(__name__)

#: Power states in which a VM is someone's (or becoming so): we neither start nor later stop it.
UP_STATES = frozenset({"running", "starting"})
#: Power states in which there is nothing to deallocate.
DOWN_STATES = frozenset({"deallocated", "deallocating"})


def encode_started(resource_group: str, vms: list[str]) -> str:
    """The ``cluster_id`` that names the VMs a start powered on: ``<resource group>:<vm>,<vm>``."""
    return f"{resource_group}:{','.join(vms)}"


def decode_started(cluster_id: str) -> tuple[str, list[str]]:
    """Inverse of :func:`encode_started`; ValueError on anything else."""
    resource_group, sep, names = cluster_id.partition(":")
    if not sep or not resource_group:
        raise ValueError(f"not an azure-vm cluster id (<resource group>:<vm>,<vm>): {cluster_id!r}")
    return resource_group, [n for n in names.split(",") if n]


class AzureVmBackend(LocalJobsMixin, ClusterBackend):
    """Spark standalone on the connection's Azure VMs; jobs as the local backend's. See the module docstring.

    :param config: the checked settings (:func:`~tricloud.cluster.azure_vm_settings.azure_vm_settings`).
    :param state_dir: where job records, driver logs and the secret's conf file live (default: the
        deployment's state dir ``/azure-vm``).
    :param lost_cluster_timeout: seconds a job's runner waits without a live worker before stopping it.
    :param poll_interval: seconds between power-state and registration polls.
    """

    name = "azure-vm"
    mode = "spark-submit"

    def __init__(
        self,
        config: AzureVmSettings,
        state_dir: str | Path | None = None,
        lost_cluster_timeout: float = 60.0,
        poll_interval: float = 2.0,
    ) -> None:
        self.config = config
        self.conn_id = config.conn_id
        self.host = config.master_host
        self.port = config.master_port
        self.state_root = Path(state_dir or tricloud_settings.state_dir()) / "azure-vm"
        self.dir = self.state_root / "spark"  # as LocalStandaloneBackend(state_dir=state_root).dir
        self.lost_cluster_timeout = float(lost_cluster_timeout)
        self.poll_interval = float(poll_interval)

    @classmethod
    def from_settings(cls, conn_id: str | None = None, workers: int | None = None, **overrides: Any) -> AzureVmBackend:
        """The cluster of connection ``conn_id`` (default ``spark_azure``); ``overrides`` are constructor args.

        :raises ValueError: a connection field is missing or wrong (the message names it).
        """
        return cls(azure_vm_settings(conn_id, workers), **overrides)

    def settings(self) -> dict[str, Any]:
        """Arguments of a ``LocalStandaloneBackend`` that watches this master (the job runner's watchdog)."""
        return {
            "host": self.host,
            "port": self.port,
            "webui_port": self.config.webui_port,
            "workers": len(self.config.worker_vms),
            "state_dir": str(self.state_root),
            "conn_id": self.conn_id,
            "mode": self.mode,
        }

    @cached_property
    def compute(self) -> AzureComputeHook:
        from airflow.providers.microsoft.azure.hooks.compute import AzureComputeHook

        return AzureComputeHook(azure_conn_id=self.config.azure_conn_id)

    # -- inspection -----------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.config.webui_port}"

    def master_json(self, timeout: float = 2.0) -> dict | None:
        return master_state(self.ui_url, timeout)

    def status(self) -> ClusterStatus:
        return cluster_status(self.master_json())

    def power_states(self) -> dict[str, str]:
        """Each VM's power state (``running``, ``deallocated``, …), master first.

        :raises ValueError: a VM the connection names does not exist in the resource group.
        """
        from azure.core.exceptions import ResourceNotFoundError

        states = {}
        for vm in (self.config.master_vm, *self.config.worker_vms):
            try:
                states[vm] = self.compute.get_power_state(self.config.resource_group, vm)
            except ResourceNotFoundError as err:
                raise ValueError(
                    f"VM {vm!r} is not in resource group {self.config.resource_group!r}: fix master_vm / worker_vms "
                    f"of connection {self.conn_id!r} ({err.message or err})"
                ) from err
        return states

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 600.0) -> ClusterInfo:
        """Power on the VMs that are down, wait for every worker at the master; reuse a running cluster.

        :param timeout: seconds for the VMs to boot and the workers to register (VMs take 1–3 minutes).
        :raises TimeoutError: not every worker registered in time (what this call started is deallocated
            first; the message says what was missing and where to look).
        """
        rg = self.config.resource_group
        started = [vm for vm, power in self.power_states().items() if power not in UP_STATES]
        try:
            for vm in started:  # begin every start, then wait: the VMs boot side by side
                self.compute.start_instance(rg, vm, wait_for_completion=False)
            status = self._wait_ready(started, timeout)
        except BaseException:
            log.error("The cluster did not come up: deallocating the VMs this call started (%s)", started)
            # Without the power-state check: right after a start was accepted a VM may still report
            # "deallocated" and then boot with nobody to stop it; deallocating a deallocated VM is a no-op.
            self._deallocate(started, check_power=False)
            raise
        if started:
            log.info("Started VMs %s in %s; %d workers registered at %s", started, rg, status.workers, self.master_url)
        else:
            log.info("Reusing the running cluster at %s (%d workers)", self.master_url, status.workers)
        return ClusterInfo(
            backend=self.name,
            master_url=self.master_url,
            ui_url=self.ui_url,
            started=bool(started),
            workers=status.workers,
            details={"resource_group": rg, "started_vms": started, "state_dir": str(self.dir)},
            cluster_id=encode_started(rg, started),
        )

    def _wait_ready(self, started: list[str], timeout: float) -> ClusterStatus:
        want = len(self.config.worker_vms)
        deadline = time.monotonic() + timeout
        while True:
            powers = self.power_states() if started else {}
            status = self.status()
            booted = all(powers.get(vm, "running") == "running" for vm in started)
            if status.alive and status.workers >= want and booted:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Spark cluster at {self.master_url} not ready after {timeout:.0f}s: master "
                    f"{'answers' if status.alive else 'does not answer at ' + self.ui_url + '/json/'}, "
                    f"{status.workers}/{want} workers alive, power states {powers or 'not polled'}. Check the VMs' "
                    "boot service (journalctl -u tricloud-spark), the NSG (subnet to itself on 7077, 8080, "
                    "ephemeral ports) and that every VM holds the connection's secret"
                )
            time.sleep(self.poll_interval)

    def stop(self, timeout: float = 600.0, cluster_id: str | None = None) -> bool:
        """Deallocate the VMs named by ``cluster_id`` (what one :meth:`start` powered on), workers first.

        Without a ``cluster_id`` nothing is stopped (this backend never stops VMs it did not start).
        VMs already deallocated or deleted count as stopped. Returns True if it deallocated any.
        """
        if not cluster_id:
            log.info("No cluster id: no VM of %s was started by this run, none is stopped", self.config.resource_group)
            return False
        resource_group, vms = decode_started(cluster_id)
        if resource_group != self.config.resource_group:
            raise ValueError(
                f"cluster id {cluster_id!r} names resource group {resource_group!r}, connection {self.conn_id!r} "
                f"{self.config.resource_group!r}: stop it with the connection that started it"
            )
        workers_first = sorted(vms, key=lambda vm: vm == self.config.master_vm)
        return bool(self._deallocate(workers_first))

    def _deallocate(self, vms: list[str], check_power: bool = True) -> list[str]:
        """Deallocate ``vms`` (in that order); returns those deallocated. Missing VMs are skipped; with
        ``check_power`` VMs already down are skipped too."""
        from azure.core.exceptions import ResourceNotFoundError

        rg, done = self.config.resource_group, []
        for vm in vms:
            try:
                if check_power and self.compute.get_power_state(rg, vm) in DOWN_STATES:
                    log.info("VM %s is already deallocated", vm)
                    continue
                self.compute.stop_instance(rg, vm, wait_for_completion=True)
            except ResourceNotFoundError:
                log.info("VM %s no longer exists: nothing to deallocate", vm)
                continue
            done.append(vm)
        if done:
            log.info("Deallocated VMs %s in %s", done, rg)
        return done

    # -- jobs: the local backend's, secured ---------------------------------------------------
    def secret_conf_dir(self) -> Path:
        """A ``SPARK_CONF_DIR`` whose ``spark-defaults.conf`` (0600) turns on ``spark.authenticate``."""
        conf_dir = self.state_root / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = conf_dir / "spark-defaults.conf"
        content = f"spark.authenticate true\nspark.authenticate.secret {self.config.secret}\n"
        if path.exists() and path.read_text() == content:
            return conf_dir
        # Written aside and renamed: a spark-submit of another task reading it meanwhile never sees it empty
        # (and would start without authentication).
        tmp = conf_dir / f".spark-defaults.conf.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        os.replace(tmp, path)
        return conf_dir

    def recover_workers(self) -> None:
        """No worker alive at submit: fail rather than power VMs on from a job (no teardown would stop them).

        :raises RuntimeError: always, naming what to do.
        """
        raise RuntimeError(
            f"no live Spark worker at {self.master_url}: the worker VMs of {self.config.resource_group!r} are down "
            "(deallocated by another run's teardown?); clear start_cluster so this run powers them on and owns them"
        )

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """As the local backend's submit, with the driver bound to this worker's private IP and auth on."""
        driver = self.config.driver_host
        conf = {**job.conf, "spark.driver.host": driver, "spark.driver.bindAddress": driver}
        env = {**job.env, "SPARK_LOCAL_IP": driver, "SPARK_CONF_DIR": str(self.secret_conf_dir())}
        return super().submit(replace(job, conf=conf, env=env), cluster_id)

    def connect_alive(self) -> bool:  # the job layer asks in connect mode only
        return False

    def connect_endpoint(self):
        raise NotImplementedError("the azure-vm backend runs jobs through spark-submit only")
