"""What the two Google Cloud backends (``dataproc``, ``dataproc-serverless``) share: ids, labels, staging, GCS reads.

* Ids: a Dataproc job id allows ``[A-Za-z0-9_-]`` (≤ 100), a batch id ``[a-z0-9-]`` (4–63): both are
  derived from the job key (:func:`tricloud.cluster.base.job_key`), so the same key is the same id and
  Dataproc itself refuses a second job of that id.
* Labels: keys and values ``[a-z0-9_-]`` (≤ 63 characters, lower case), :func:`label_value` folds a
  value into that alphabet.
* Code staging: the same content-addressed objects as on AWS (:func:`tricloud.cluster.code_bundle.project_zip`),
  uploaded through the google provider's ``GCSHook`` under ``<code_uri>/code/``; an object already there
  is not uploaded again.
* :class:`DataprocEndpointHook`: the provider's ``DataprocHook`` always talks gRPC to
  ``<region>-dataproc.googleapis.com:443``; no connection field changes that. This subclass honours an
  ``api_endpoint`` (REST) when one is configured — a private endpoint, or the local fake of the tests —
  and is the provider's hook unchanged otherwise (client options from the hook's own
  ``get_client_options``, so a non-default universe domain is handled as the provider does).
* :class:`GcpBackend`: what both backends share (settings, hooks, job handles, driver errors, results).
* Clusters are named ``name/uuid`` in a ``cluster_id`` (:func:`cluster_ref`), so a delete names the
  incarnation; FAILED_PRECONDITION (:func:`is_failed_precondition`) is "nothing to do" where a race makes it so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.google.cloud.hooks.dataproc import DataprocHook

from include.errors import ConfigError
from tricloud.cluster import code_bundle
from tricloud.cluster.base import ClusterBackend, JobHandle, JobStatus, with_log_tail
from tricloud.cluster.gcp_settings import DataprocSettings, dataproc_settings
from tricloud.cluster.gcs_output import log_tail, split_gs

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    from tricloud.cluster.base import SparkJob

#: Label every resource a tricloud backend creates carries; teardown deletes only such resources.
MANAGED_LABEL = "tricloud-managed"
#: Label naming the DAG run (or process) that created the resource.
CREATED_BY_LABEL = "tricloud-created-by"
#: The Google Cloud console.
CONSOLE = "https://console.cloud.google.com"

#: Batch states after which there is nothing to cancel.
BATCH_ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_BATCH_ID_UNSAFE = re.compile(r"[^a-z0-9-]+")


def label_value(value: str) -> str:
    """``value`` in the label alphabet (lower case ``[a-z0-9_-]``, ≤ 63 characters)."""
    return _LABEL_UNSAFE.sub("-", str(value).lower())[:63]


def job_id(key: str) -> str:
    """The Dataproc job id of a job key (``.`` becomes ``_``; Dataproc allows ``[A-Za-z0-9_-]``, ≤ 100)."""
    return _JOB_ID_UNSAFE.sub("_", key)[:100]


def batch_id(key: str) -> str:
    """The Dataproc Serverless batch id of a job key: ``[a-z0-9-]``, 4–63 characters, starting with a letter.

    Lower-casing cannot make two keys collide: the key ends with 12 hex digits of its own hash.
    """
    value = _BATCH_ID_UNSAFE.sub("-", key.lower()).strip("-")[:63].rstrip("-")
    return value if value[:1].isalpha() else f"b-{value}"[:63]


def gs_uri(value: str, env: str) -> str:
    """``value`` without a trailing slash; ``ValueError`` naming ``env`` unless it is ``gs://bucket[/prefix]``."""
    if not str(value).startswith("gs://") or len(str(value)) <= len("gs://"):
        raise ConfigError(f"{env}={value!r} must be a GCS URI such as gs://my-bucket/tricloud")
    return str(value).rstrip("/")


def require_gcs_lake(backend: str, job: SparkJob | None = None) -> None:
    """Fail fast unless the lake (and a job's metrics) are on GCS: Dataproc's machines reach ``gs://`` through
    the GCS connector; a local path would be a node's own disk, and there is no S3 connector.

    :raises ValueError: naming ``LAKE_ROOT`` and what to set it to.
    """
    from include.paths import check_lake_root

    root = os.environ.get("LAKE_ROOT") or ""
    if not root:
        raise ConfigError(f"LAKE_ROOT is not set: the {backend} backend needs LAKE_ROOT=gs://<bucket>/<prefix>")
    # The lake layer's own rules first (a bucket, no '?', no control character; docs/design.md "The lake on GCS").
    candidates = [check_lake_root(root) if root.startswith("gs://") else root]
    if job is not None:
        candidates.append(job.result_uri)
    for value in filter(None, candidates):
        if not str(value).startswith("gs://"):
            raise ConfigError(
                f"LAKE_ROOT is {value}, but the {backend} backend runs the jobs on Google Cloud's machines, "
                "which reach the lake through the GCS connector: set LAKE_ROOT=gs://<bucket>/<prefix>"
            )


def is_failed_precondition(err: Exception) -> bool:
    """Whether a Google API error is FAILED_PRECONDITION: ``FailedPrecondition`` over gRPC; over REST the
    client raises the HTTP class (``BadRequest``, 400) with the RPC status in the reply's ``error.status``."""
    from google.api_core.exceptions import BadRequest, FailedPrecondition

    if isinstance(err, FailedPrecondition):
        return True
    if not isinstance(err, BadRequest):
        return False
    try:
        return err.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    except Exception:  # no JSON reply: not ours to classify
        return False


def precondition_failed(call: Callable[[], Any]) -> str | None:
    """Run ``call``; Dataproc's message when it refused with FAILED_PRECONDITION (e.g. cancelling a job that
    has just ended, deleting another incarnation of a cluster), None when it went through. Other errors
    propagate."""
    from google.api_core.exceptions import BadRequest, FailedPrecondition

    try:
        call()
    except (FailedPrecondition, BadRequest) as err:
        if not is_failed_precondition(err):
            raise
        return err.message
    return None


def cluster_ref(cluster_id: str) -> tuple[str, str | None]:
    """``name/uuid`` (what ``dataproc`` returns as ``cluster_id``) → ``(name, uuid)``; a bare name (an older
    ``cluster_id``) → ``(name, None)``."""
    name, _, cluster_uuid = cluster_id.partition("/")
    return name, cluster_uuid or None


def cancel_batch(hook: DataprocHook, project: str, region: str, batch_id: str) -> bool:
    """Cancel batch ``batch_id`` unless it has ended; True when a cancel was sent.

    Dataproc cancels a batch through its long-running operation (``CancelOperation``), as ``gcloud dataproc
    batches cancel`` does; sent with the batch client's own ``cancel_operation`` (the hook's
    ``get_operations_client`` is api_core's REST operations client, whose cancel fails before sending).
    A batch that ends between the read and the cancel is FAILED_PRECONDITION: nothing left to cancel.
    """
    batch = hook.get_batch(batch_id=batch_id, project_id=project, region=region)
    if batch.state.name in BATCH_ENDED:
        return False
    client = hook.get_batch_client(region)
    if precondition_failed(lambda: client.cancel_operation(request={"name": batch.operation})):
        return False
    hook.log.info("Cancelled Dataproc Serverless batch %s (operation %s)", batch_id, batch.operation)
    return True


class ClusterVanished(RuntimeError):
    """The cluster was NOT_FOUND while we waited for it (deleted while being created)."""


def request_id(*parts: str) -> str:
    """A Dataproc request id (≤ 40 of ``[A-Za-z0-9_-]``) for ``parts``: the same parts, the same id."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def cluster_config(s: Any) -> dict[str, Any]:
    """The ``ClusterConfig`` tricloud creates: staging bucket, machines, image, idle-delete TTL."""
    gce: dict[str, Any] = {"internal_ip_only": True}
    if s.service_account:
        gce["service_account"] = s.service_account
    return {
        "config_bucket": s.staging_bucket,
        "gce_cluster_config": gce,
        "master_config": {"num_instances": 1, "machine_type_uri": s.machine_type},
        "worker_config": {"num_instances": s.workers, "machine_type_uri": s.machine_type},
        "software_config": {"image_version": s.image_version},
        # The cluster must outlive a job; Dataproc deletes it after this long without one.
        "lifecycle_config": {"idle_delete_ttl": {"seconds": s.idle_delete_ttl}},
    }


def labels(s: Any) -> dict[str, str]:
    """The labels of what tricloud creates: the configured ones, ``tricloud-managed=true`` and who created it."""
    return s.labels | {MANAGED_LABEL: "true", CREATED_BY_LABEL: label_value(s.created_by)}


@dataclass(frozen=True)
class StagedCode:
    """Where the cluster reads a job's code: the application and the project zip (``gs://`` URIs)."""

    application: str
    py_files: str


def stage_code(gcs: GCSHook, code_uri: str, job: SparkJob) -> StagedCode:
    """Upload the job's application and ``include/`` (zipped) under ``<code_uri>/code/``, content-addressed.

    :raises FileNotFoundError: the application file does not exist.
    """
    app = Path(job.application)
    app_bytes = app.read_bytes()
    zip_bytes = code_bundle.project_zip()
    staged = StagedCode(
        application=f"{code_uri}/code/{app.stem}-{code_bundle.digest(app_bytes)}.py",
        py_files=f"{code_uri}/code/include-{code_bundle.digest(zip_bytes)}.zip",
    )
    for uri, data in ((staged.application, app_bytes), (staged.py_files, zip_bytes)):
        bucket, key = split_gs(uri)
        if not gcs.exists(bucket, key):
            gcs.upload(bucket, key, data=data)
    return staged


def spark_properties(job: SparkJob, driver_env: str) -> dict[str, str]:
    """``job``'s conf, memory and environment as Spark properties (Dataproc takes a map, not argv).

    :param driver_env: property prefix of the driver's environment (YARN cluster mode:
        ``spark.yarn.appMasterEnv.``; Dataproc Serverless: ``spark.dataproc.driverEnv.``).
    """
    props = dict(job.conf)
    if job.driver_memory:
        props.setdefault("spark.driver.memory", job.driver_memory)
    if job.executor_memory:
        props.setdefault("spark.executor.memory", job.executor_memory)
    for name, value in job.env.items():
        props.setdefault(f"{driver_env}{name}", value)
        props.setdefault(f"spark.executorEnv.{name}", value)
    return dict(sorted(props.items()))


def pyspark_job(s: DataprocSettings, job: SparkJob, staged: StagedCode, cluster: str) -> dict[str, Any]:
    """The Dataproc ``Job`` of ``job`` on cluster ``cluster`` (a name): a PySpark job in YARN cluster mode
    (driver environment from ``spark.yarn.appMasterEnv.*``, as on EMR), its id from the job key."""
    props = spark_properties(job, "spark.yarn.appMasterEnv.")
    props.setdefault("spark.submit.deployMode", "cluster")
    props.setdefault("spark.app.name", job.name)
    return {
        "reference": {"project_id": s.project, "job_id": job_id(job.key)},
        "placement": {"cluster_name": cluster},
        "pyspark_job": {
            "main_python_file_uri": staged.application,
            "args": job.submitted_args,
            "python_file_uris": [staged.py_files],
            "properties": props,
        },
        "labels": {MANAGED_LABEL: "true", CREATED_BY_LABEL: label_value(s.created_by)},
    }


def read_gcs_json(gcs: GCSHook, uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri``, None when absent; ``ValueError`` when it is not JSON."""
    bucket, key = split_gs(uri)
    if not gcs.exists(bucket, key):
        return None
    return json.loads(gcs.download(bucket, key))


def storage_link(uri: str) -> str:
    """The Cloud Storage console page of a ``gs://`` object or prefix."""
    bucket, key = split_gs(uri)
    return f"{CONSOLE}/storage/browser/_details/{bucket}/{key}"


class DataprocEndpointHook(DataprocHook):
    """``DataprocHook`` whose clients use ``api_endpoint`` over REST when given, the provider's clients otherwise.

    :param api_endpoint: e.g. ``https://dataproc.example.internal`` or, in tests, ``http://127.0.0.1:PORT``;
        None or empty: the provider's own endpoint and transport.
    """

    def __init__(self, *, api_endpoint: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_endpoint = api_endpoint or None

    def _rest_client(self, client_class: type) -> Any:
        from airflow.providers.google.common.consts import CLIENT_INFO

        # The hook's own options: in a non-default universe (GOOGLE_CLOUD_UNIVERSE_DOMAIN, the connection's
        # universe) it keeps the universe domain and ignores the override, as the provider's clients do.
        return client_class(
            credentials=self.get_credentials(),
            client_info=CLIENT_INFO,
            transport="rest",
            client_options=self.get_client_options(api_endpoint_override=self.api_endpoint),
        )

    def get_cluster_client(self, region: str | None = None):
        from google.cloud.dataproc_v1 import ClusterControllerClient

        if self.api_endpoint:
            return self._rest_client(ClusterControllerClient)
        return super().get_cluster_client(region)

    def get_job_client(self, region: str | None = None):
        from google.cloud.dataproc_v1 import JobControllerClient

        if self.api_endpoint:
            return self._rest_client(JobControllerClient)
        return super().get_job_client(region)

    def get_batch_client(self, region: str | None = None):
        from google.cloud.dataproc_v1 import BatchControllerClient

        if self.api_endpoint:
            return self._rest_client(BatchControllerClient)
        return super().get_batch_client(region)


class GcpBackend(ClusterBackend):
    """What ``dataproc`` and ``dataproc-serverless`` share: settings, the Dataproc and GCS hooks, job handles,
    the driver's error with its output's tail, and results read from GCS.

    A subclass sets ``name`` and implements :meth:`driver_log` (where Dataproc keeps the driver's output).
    """

    settings: DataprocSettings

    def __init__(self, settings: DataprocSettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, **overrides: Any) -> GcpBackend:
        """Settings from ``TRICLOUD_*`` variables and the connection (``gcp_settings.dataproc_settings``).

        :raises ValueError: a setting missing or malformed, or an unknown override (the message names it).
        """
        return cls(dataproc_settings(overrides, cls.name))

    @cached_property
    def hook(self) -> DataprocEndpointHook:
        """The provider's ``DataprocHook`` on the deployment's connection (its ``api_endpoint`` honoured)."""
        return DataprocEndpointHook(gcp_conn_id=self.settings.gcp_conn_id, api_endpoint=self.settings.api_endpoint)

    @cached_property
    def gcs(self) -> GCSHook:
        """``GCSHook`` on the same connection (staging, results, driver output)."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return GCSHook(gcp_conn_id=self.settings.gcp_conn_id)

    @property
    def _where(self) -> dict[str, str]:
        return {"project_id": self.settings.project, "region": self.settings.region}

    def _handle(self, job: SparkJob, job_id: str, cluster_id: str | None, details: dict[str, Any]) -> JobHandle:
        return JobHandle(
            backend=self.name,
            job_id=job_id,
            key=job.key,
            result_uri=job.result_uri,
            cluster_id=cluster_id,
            details={"region": self.settings.region, "project": self.settings.project, **details},
        )

    def driver_log(self, handle: JobHandle) -> str | None:
        """The ``gs://`` prefix of the driver's output, None before Dataproc names one."""
        raise NotImplementedError

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """Dataproc's status message, then the tail of the driver output (or where it will be)."""
        head = status.message or f"{handle.job_id} ended {status.raw}"
        where = self.driver_log(handle)
        return with_log_tail(head, where, log_tail(self.gcs, where), "none recorded", what="driver output")

    def read_result(self, handle: JobHandle) -> dict[str, Any]:
        """The job's metrics at ``handle.result_uri``, read with the backend's Google Cloud connection."""
        if handle.result_uri.startswith("gs://"):
            return read_gcs_json(self.gcs, handle.result_uri) or {}
        return super().read_result(handle)

    def log_info(self, msg: str, *args: Any) -> None:
        self.hook.log.info(msg, *args)
