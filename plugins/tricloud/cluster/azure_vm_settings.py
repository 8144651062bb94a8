"""Settings of the ``azure-vm`` backend, read from its Spark connection; fail fast naming what to set.

The connection (``spark_azure`` by default, type ``spark``) is the one the job layer hands to the
provider's ``SparkSubmitHook`` too, so host and port are the master's:

``spark://10.0.0.4:7077?deploy-mode=client&spark-binary=spark-submit&resource_group=rg-tricloud``
``&master_vm=spark-master&worker_vms=spark-w1,spark-w2`` with the password set to the cluster's shared
``spark.authenticate`` secret (``AIRFLOW_CONN_SPARK_AZURE`` or a secrets backend).

==================  =====================================================================================
``host``, ``port``  the master VM's **private** IP and RPC port (7077); a public or wildcard address is
                    refused
``password``        the shared ``spark.authenticate`` secret (required; the VMs' image holds the same)
``resource_group``  the VMs' resource group (extra, required)
``master_vm``       the master VM's name (extra, required)
``worker_vms``      the worker VMs' names, comma-separated or a JSON list (extra, required)
``azure_conn_id``   the Azure connection of ``AzureComputeHook`` (extra, default ``azure_default``)
``webui_port``      the master's web UI port (extra, default 8080; read for worker registration)
``driver_host``     this Airflow worker's private IP, where executors reach the driver (extra; default:
                    the local address of the route to the master)
==================  =====================================================================================
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any

from include.errors import ConfigError

DEFAULT_CONN_ID = "spark_azure"


@dataclass(frozen=True)
class AzureVmSettings:
    """What the backend needs (see the module docstring for where each comes from)."""

    conn_id: str
    master_host: str
    master_port: int
    secret: str
    resource_group: str
    master_vm: str
    worker_vms: tuple[str, ...]
    azure_conn_id: str = "azure_default"
    webui_port: int = 8080
    driver_host: str = ""

    def __repr__(self) -> str:  # never print the secret (task logs, tracebacks)
        return f"AzureVmSettings(conn_id={self.conn_id!r}, master={self.master_host}:{self.master_port}, ...)"


def require_private_ip(value: str, what: str, fix: str) -> str:
    """``value`` if it is a private (RFC 1918 / unique-local) IP address, else ValueError saying ``fix``."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not an IP address: {fix}") from None
    if address.is_unspecified or address.is_loopback or address.is_link_local or not address.is_private:
        raise ConfigError(f"{what} {value} is not a private network address: {fix}")
    return value


def route_source(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host:port`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return probe.getsockname()[0]


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(",")
    return tuple(v.strip() for v in value or () if str(v).strip())


def azure_vm_settings(conn_id: str | None = None, workers: int | None = None) -> AzureVmSettings:
    """Read and check the connection ``conn_id`` (default ``spark_azure``).

    :param workers: workers a caller wants registered; more than the connection names is an error.
    :raises AirflowNotFoundException: the connection is missing (the message names the variable).
    :raises ValueError: a required field is missing or an address is not private (the message names
        the connection field to set).
    """
    from tricloud.connections import env_name, require_connection

    conn_id = conn_id or DEFAULT_CONN_ID
    conn = require_connection(conn_id, ("spark",))
    extra = conn.extra_dejson
    where = f"connection {conn_id!r} ({env_name(conn_id)})"
    missing = [k for k in ("resource_group", "master_vm", "worker_vms") if not extra.get(k)]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)} in its extra: name the VMs' resource group and VMs")
    if not conn.host:
        raise ConfigError(f"{where} has no host: set it to the master VM's private IP, e.g. spark://10.0.0.4:7077")
    host = conn.host.removeprefix("spark://")
    require_private_ip(host, f"{where}: master host", "set the host to the master VM's private IP (e.g. 10.0.0.4)")
    if not conn.password:
        raise ConfigError(
            f"{where} has no password: set it to the cluster's shared spark.authenticate secret "
            "(the same secret the VM image's /etc/tricloud/spark-secret holds)"
        )
    worker_vms = _names(extra["worker_vms"])
    if workers is not None and int(workers) > len(worker_vms):
        raise ConfigError(f"{workers} workers were asked for but {where} names {len(worker_vms)} worker_vms: add VMs")
    port = int(conn.port or 7077)
    driver = str(extra.get("driver_host") or route_source(host, port))
    require_private_ip(driver, f"{where}: driver host", "set driver_host in the extra to this worker's private IP")
    return AzureVmSettings(
        conn_id=conn_id,
        master_host=host,
        master_port=port,
        secret=conn.password,
        resource_group=str(extra["resource_group"]),
        master_vm=str(extra["master_vm"]),
        worker_vms=worker_vms,
        azure_conn_id=str(extra.get("azure_conn_id") or "azure_default"),
        webui_port=int(extra.get("webui_port") or 8080),
        driver_host=driver,
    )
