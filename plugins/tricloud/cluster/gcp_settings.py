"""Settings of the Google Cloud backends, from ``TRICLOUD_*`` variables, the connection and overrides.

Each ``*_settings(overrides)`` fails fast with ``ValueError`` naming what to set; operator
``backend_kwargs`` (and ``conn_id``, taken as the Google Cloud connection) win over the environment.
The project falls back to the connection's ``project`` extra (the provider's convention); the REST
endpoint to the connection's ``api_endpoint`` extra (read by tricloud, ignored by the provider).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from include.errors import ConfigError
from tricloud.cluster import gcp
from tricloud.cluster.env_settings import (
    IdleTimeoutBounds,
    backend_overrides,
    created_by,
    idle_timeout_setting,
    parse_tags,
    setting,
)

#: Dataproc's bounds of ``lifecycleConfig.idleDeleteTtl``: 10 minutes … 14 days.
IDLE_TTL_BOUNDS = IdleTimeoutBounds(600, 1_209_600, "seconds", "Dataproc")


@dataclass(frozen=True)
class DataprocSettings:
    """What both Dataproc backends need (env names in brackets).

    :param project: project id (``TRICLOUD_GCP_PROJECT``, else the connection's ``project`` extra; required).
    :param region: e.g. ``europe-west1`` (``TRICLOUD_DATAPROC_REGION``, required).
    :param code_uri: ``gs://bucket/prefix`` for staged code; also the cluster's staging bucket
        (``TRICLOUD_GCS_CODE_URI``, required).
    :param gcp_conn_id: Google Cloud connection (``TRICLOUD_GCP_CONN_ID``, default ``google_cloud_default``).
    :param api_endpoint: a REST endpoint instead of Google's (``TRICLOUD_DATAPROC_API_ENDPOINT``, else the
        connection's ``api_endpoint`` extra; default none).
    :param cluster_name: ``dataproc``: name to find or create (``TRICLOUD_DATAPROC_CLUSTER_NAME``, ``tricloud``).
    :param image_version: ``dataproc``: (``TRICLOUD_DATAPROC_IMAGE_VERSION``, default ``2.3-debian12``).
    :param idle_delete_ttl: ``dataproc``: seconds idle before Dataproc deletes the cluster
        (``TRICLOUD_DATAPROC_IDLE_DELETE_TTL``, default 1800; 600 … 1209600).
    :param machine_type: ``dataproc``: (``TRICLOUD_DATAPROC_MACHINE_TYPE``, default ``n2-standard-4``).
    :param workers: ``dataproc``: primary workers (default 2).
    :param runtime_version: ``dataproc-serverless``: (``TRICLOUD_DATAPROC_SERVERLESS_VERSION``, ``2.3``).
    :param service_account: the jobs' service account (``TRICLOUD_DATAPROC_SERVICE_ACCOUNT``; default: the
        project's Compute Engine default account).
    :param labels: extra labels (``TRICLOUD_GCP_LABELS``: ``k=v,k=v``).
    :param created_by: value of the ``tricloud-created-by`` label (default host:pid).
    :param poll_interval: seconds between state polls while waiting for the cluster (default 10).
    :param start_timeout: least seconds ``start`` waits for a cluster (``TRICLOUD_DATAPROC_START_TIMEOUT``,
        default 900; a cluster takes ~90 s to a few minutes).
    """

    project: str
    region: str
    code_uri: str
    gcp_conn_id: str = "google_cloud_default"
    api_endpoint: str | None = None
    cluster_name: str = "tricloud"
    image_version: str = "2.3-debian12"
    idle_delete_ttl: int = 1800
    machine_type: str = "n2-standard-4"
    workers: int = 2
    runtime_version: str = "2.3"
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    poll_interval: float = 10.0
    start_timeout: float = 900.0

    @property
    def staging_bucket(self) -> str:
        return gcp.split_gs(self.code_uri)[0]


def _connection_extra(conn_id: str) -> dict[str, Any]:
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        return BaseHook.get_connection(conn_id).extra_dejson
    except AirflowNotFoundException:
        raise ConfigError(
            f"Google Cloud connection {conn_id!r} is missing: set AIRFLOW_CONN_{conn_id.upper()} "
            "(conn_type google_cloud_platform), or TRICLOUD_GCP_CONN_ID to the connection to use"
        ) from None


def dataproc_settings(overrides: Mapping[str, Any], backend: str = "dataproc") -> DataprocSettings:
    """Settings from ``TRICLOUD_*`` variables and the connection; ``overrides`` (``backend_kwargs``) win.

    :raises ValueError: the connection, project, region or code URI missing (the message names the
        variable to set), a bad number or label list, or an override this backend does not know.
    """
    overrides = backend_overrides(overrides, DataprocSettings, backend=backend, conn_field="gcp_conn_id")
    code_uri = gcp.gs_uri(
        setting(
            overrides,
            "code_uri",
            "TRICLOUD_GCS_CODE_URI",
            required="set it to gs://<bucket>/<prefix> where Dataproc may read the staged code",
        ),
        "TRICLOUD_GCS_CODE_URI",
    )
    region = setting(
        overrides, "region", "TRICLOUD_DATAPROC_REGION", required="set it to the Dataproc region, e.g. europe-west1"
    )
    conn_id = setting(overrides, "gcp_conn_id", "TRICLOUD_GCP_CONN_ID", "google_cloud_default")
    extra = _connection_extra(conn_id)
    project = setting(overrides, "project", "TRICLOUD_GCP_PROJECT") or extra.get("project")
    if not project:
        raise ConfigError(
            f"TRICLOUD_GCP_PROJECT is not set and connection {conn_id!r} names no project: "
            "set TRICLOUD_GCP_PROJECT, or the connection's extra 'project'"
        )
    ttl = idle_timeout_setting(overrides, "idle_delete_ttl", "TRICLOUD_DATAPROC_IDLE_DELETE_TTL", 1800, IDLE_TTL_BOUNDS)
    labels = parse_tags(setting(overrides, "labels", "TRICLOUD_GCP_LABELS"), "TRICLOUD_GCP_LABELS")
    return DataprocSettings(
        project=str(project),
        region=str(region),
        code_uri=code_uri,
        gcp_conn_id=conn_id,
        api_endpoint=setting(overrides, "api_endpoint", "TRICLOUD_DATAPROC_API_ENDPOINT") or extra.get("api_endpoint"),
        cluster_name=setting(overrides, "cluster_name", "TRICLOUD_DATAPROC_CLUSTER_NAME", "tricloud"),
        image_version=setting(overrides, "image_version", "TRICLOUD_DATAPROC_IMAGE_VERSION", "2.3-debian12"),
        idle_delete_ttl=ttl,
        machine_type=setting(overrides, "machine_type", "TRICLOUD_DATAPROC_MACHINE_TYPE", "n2-standard-4"),
        workers=int(overrides.get("workers") or 2),
        runtime_version=setting(overrides, "runtime_version", "TRICLOUD_DATAPROC_SERVERLESS_VERSION", "2.3"),
        service_account=setting(overrides, "service_account", "TRICLOUD_DATAPROC_SERVICE_ACCOUNT"),
        labels={gcp.label_value(k): gcp.label_value(v) for k, v in labels.items()},
        created_by=created_by(overrides),
        poll_interval=float(overrides.get("poll_interval") or 10.0),
        start_timeout=float(setting(overrides, "start_timeout", "TRICLOUD_DATAPROC_START_TIMEOUT", 900)),
    )
