"""Three "Azure VMs" on this machine for the ``azure-vm`` backend: network namespaces behind the ARM fake.

``master``, ``w1`` and ``w2`` are hosts of a :class:`~tests.support.netns.PrivateNetwork` (own IPs,
own loopback); their image's boot service is ``python -m include.spark_service`` with the cluster's
secret in a 0600 file, and the :class:`~tests.support.azure_arm.FakeArm` runs that service inside the
VM's namespace when the backend starts the VM through the provider's hook. This machine (the root
namespace, the bridge's address) plays the Airflow worker that runs the driver. The lake is this
machine's file system, at the same path on every host, as a shared mount would be.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.azure_arm import FakeArm
from tests.support.netns import PrivateNetwork
from tricloud import settings

RESOURCE_GROUP = "rg-tricloud"
VMS = {"master": "spark-master", "w1": "spark-w1", "w2": "spark-w2"}
CONN_ID = "spark_azure"
AZURE_CONN_ID = "azure_vms"


@dataclass
class AzureVmCluster:
    net: PrivateNetwork
    arm: FakeArm
    env: dict[str, str]  # connections and client settings to apply (monkeypatch)
    secret: str

    def ip(self, host: str) -> str:
        return self.net.hosts[host].ip

    def host_of_vm(self, vm: str) -> str:
        return {v: k for k, v in VMS.items()}[vm]

    def close(self) -> None:
        self.arm.close()
        self.net.close()


def boot_command(net: PrivateNetwork, host: str, secret_file: Path, work: Path) -> list[str]:
    """What the VM image runs at boot, inside the VM's namespace."""
    ip, master_ip = net.hosts[host].ip, net.hosts["master"].ip
    role = ["master", "--webui-port", "8080"]
    if host != "master":
        role = ["worker", "--master", f"spark://{master_ip}:7077", "--cores", "1", "--memory", "1g"]
        role += ["--webui-port", "8081"]
    return [
        *net.prefix_command(host),
        sys.executable,
        "-m",
        "include.spark_service",
        *role,
        "--host",
        ip,
        "--secret-file",
        str(secret_file),
        "--work-dir",
        str(work / host),
    ]


def open_cluster(state_dir: Path) -> AzureVmCluster:
    """The network, the fake with three deallocated VMs, and the env that points the backend at them."""
    net = PrivateNetwork(tuple(VMS)).open()
    try:
        arm = FakeArm(state_dir / "arm").start()
        secret = secrets.token_urlsafe(24)
        image = state_dir / "image"
        image.mkdir(parents=True, exist_ok=True)
        secret_file = image / "spark-secret"
        secret_file.write_text(secret)
        secret_file.chmod(0o600)
        boot_env = {**settings.python_env(), "PYTHONPATH": str(settings.PROJECT_ROOT)}
        boot_env.pop("SPARK_LOCAL_IP", None)  # the service sets its own
        for host, vm in VMS.items():
            arm.add_vm(RESOURCE_GROUP, vm, boot_command(net, host, secret_file, state_dir / "vms"), boot_env)
    except BaseException:
        net.close()
        raise
    env = backend_env(arm, net.hosts["master"].ip, secret, no_proxy=f"{net.prefix}.0/24")
    return AzureVmCluster(net, arm, env, secret)


def backend_env(arm: FakeArm, master_ip: str, secret: str, no_proxy: str = "", **extra_fields) -> dict[str, str]:
    """The backend's two connections (Spark: the master and the VMs; Azure: the fake's subscription),
    ``TRICLOUD_CLUSTER_BACKEND`` and the SDK's route to the fake."""
    extra = {
        "deploy-mode": "client",
        "spark-binary": "spark-submit",
        "resource_group": RESOURCE_GROUP,
        "master_vm": VMS["master"],
        "worker_vms": [VMS["w1"], VMS["w2"]],
        "azure_conn_id": AZURE_CONN_ID,
        "webui_port": 8080,
        **extra_fields,
    }
    spark_conn = {"conn_type": "spark", "host": master_ip, "port": 7077, "password": secret, "extra": extra}
    azure_conn = {"conn_type": "azure_compute", "extra": {"subscriptionId": arm.subscription}}
    bypass = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost", no_proxy]))
    return {
        **arm.client_env(),
        "NO_PROXY": bypass,
        "no_proxy": bypass,
        "TRICLOUD_CLUSTER_BACKEND": "azure-vm",
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(spark_conn),
        f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}": json.dumps(azure_conn),
    }
