"""What the two AWS backends (``emr``, ``emr-serverless``) share: settings, code staging, S3 reads.

* Settings come from the environment (``TRICLOUD_*``, see ``.env.example``) and a backend's
  ``from_settings`` overrides; a missing one fails fast naming the variable to set.
* The project code is staged once per content: ``include/`` zipped deterministically (sorted names,
  fixed timestamps) and uploaded as ``<code_uri>/code/include-<sha256[:16]>.zip`` through the amazon
  provider's ``S3Hook``; the application ``.py`` likewise as ``<name>-<sha256[:16]>.py``. An object
  already there is not uploaded again, and a new version of the code never overwrites what a running
  job reads (content-addressed keys).
* Results and driver logs are read back through the same ``S3Hook`` (the deployment's AWS
  connection), not through ambient credentials.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.errors import ConfigError
from tricloud.cluster.base import ClusterBackend, JobHandle, with_log_tail
from tricloud.cluster.code_bundle import digest, project_zip

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tricloud.cluster.base import SparkJob

#: Tag every resource a tricloud backend creates carries; teardown terminates only such resources.
MANAGED_TAG = "tricloud:managed"
#: Tag naming the DAG run (or process) that created the resource.
CREATED_BY_TAG = "tricloud:created-by"
#: Lines of a failed driver's log shown in the task log.
LOG_TAIL_LINES = 40
#: The AWS console, as the amazon provider's links build it.
CONSOLE = "https://console.aws.amazon.com"


def s3_uri(value: str, env: str) -> str:
    """``value`` without a trailing slash; ``ValueError`` naming ``env`` unless it is ``s3://bucket[/prefix]``."""
    if not str(value).startswith("s3://") or len(str(value)) <= len("s3://"):
        raise ConfigError(f"{env}={value!r} must be an S3 URI such as s3://my-bucket/tricloud")
    return str(value).rstrip("/")


def require_object_store_lake(backend: str, job: SparkJob | None = None) -> None:
    """Fail fast unless the lake is an object store: on a cloud backend the driver and the executors run on
    the cloud's machines, where a local path would be that node's disk (and lost with it).

    Checks ``$LAKE_ROOT`` when it is set and, for a job, where its metrics go (``$LAKE_ROOT/_jobs/…``).

    :raises ValueError: naming ``LAKE_ROOT`` and what to set it to.
    """
    from include.lake_fs import is_object_store
    from tricloud.settings import lake_root

    candidates = [lake_root()]  # unset: fails naming LAKE_ROOT before any cluster is created
    if job is not None:
        candidates.append(job.result_uri)
    for value in filter(None, candidates):
        if not is_object_store(value):
            raise ConfigError(
                f"LAKE_ROOT points at a local path ({value}), but the {backend} backend runs the jobs on the "
                "cloud's machines, where that path would be the node's own disk: set LAKE_ROOT=s3://<bucket>/<prefix>"
            )
        if not str(value).startswith("s3://"):
            # EMR's Spark reaches S3 through EMRFS and has no GCS connector: a gs:// lake fails only in the job.
            raise ConfigError(
                f"LAKE_ROOT is {value}, but the {backend} backend's Spark reaches only S3 (EMRFS): "
                "set LAKE_ROOT=s3://<bucket>/<prefix>"
            )


@dataclass(frozen=True)
class StagedCode:
    """Where the cluster reads a job's code: the application and the project zip (``s3://`` URIs)."""

    application: str
    py_files: str


def _upload_once(s3: S3Hook, uri: str, data: bytes) -> None:
    bucket, key = s3.parse_s3_url(uri)
    if not s3.check_for_key(key, bucket):
        s3.load_bytes(data, key=key, bucket_name=bucket, replace=True)


def stage_code(s3: S3Hook, code_uri: str, job: SparkJob) -> StagedCode:
    """Upload the job's application and the project zip under ``<code_uri>/code/`` (content-addressed).

    :raises FileNotFoundError: the application file does not exist.
    """
    app = Path(job.application)
    app_bytes = app.read_bytes()
    zip_bytes = project_zip()
    staged = StagedCode(
        application=f"{code_uri}/code/{app.stem}-{digest(app_bytes)}.py",
        py_files=f"{code_uri}/code/include-{digest(zip_bytes)}.zip",
    )
    _upload_once(s3, staged.application, app_bytes)
    _upload_once(s3, staged.py_files, zip_bytes)
    return staged


def spark_submit_options(job: SparkJob, driver_env: str = "spark.yarn.appMasterEnv.") -> list[str]:
    """``--conf`` / memory options of ``job`` for spark-submit; its environment as driver/executor conf.

    :param driver_env: conf prefix of the driver's environment (YARN cluster mode:
        ``spark.yarn.appMasterEnv.``; EMR Serverless: ``spark.emr-serverless.driverEnv.``).
    """
    options: list[str] = []
    if job.driver_memory:
        options += ["--driver-memory", job.driver_memory]
    if job.executor_memory:
        options += ["--executor-memory", job.executor_memory]
    conf = dict(job.conf)
    for name, value in job.env.items():
        conf.setdefault(f"{driver_env}{name}", value)  # the driver runs on the cluster
        conf.setdefault(f"spark.executorEnv.{name}", value)
    for key in sorted(conf):
        options += ["--conf", f"{key}={conf[key]}"]
    return options


def read_s3_json(s3: S3Hook, uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri`` or None when absent; ``ValueError`` when it is not JSON."""
    bucket, key = s3.parse_s3_url(uri)
    if not s3.check_for_key(key, bucket):
        return None
    return json.loads(s3.read_key(key, bucket))


def read_log_tail(s3: S3Hook, uri: str, lines: int = LOG_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a (possibly gzipped) log object, None when it is not there (yet)."""
    from botocore.exceptions import ClientError

    bucket, key = s3.parse_s3_url(uri)
    try:
        body = s3.get_key(key, bucket).get()["Body"].read()
    except ClientError:  # not written yet (EMR ships logs minutes late) or not readable: say where instead
        return None
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def normalise_s3(uri: str | None) -> str | None:
    """EMR reports ``LogUri`` as ``s3n://…``; the same place as ``s3://…`` without a trailing slash."""
    if not uri:
        return None
    for scheme in ("s3n://", "s3a://"):
        if uri.startswith(scheme):
            uri = "s3://" + uri[len(scheme) :]
    return uri.rstrip("/")


class AwsBackend(ClusterBackend):
    """What ``emr`` and ``emr-serverless`` share: the S3 hook, the region, job handles, results and logs
    read from S3, and the S3 console links of a driver log.

    A subclass sets ``name``, ``settings`` (with ``aws_conn_id``) and ``hook`` (its service's hook) and
    implements :meth:`driver_log`.
    """

    settings: Any
    hook: AwsGenericHook

    @cached_property
    def s3(self) -> S3Hook:
        """``S3Hook`` on the deployment's AWS connection (staging, results, logs)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.settings.aws_conn_id)

    @property
    def region(self) -> str:
        """The connection's region; ``us-east-1`` when it names none (boto3's default)."""
        return self.hook.conn_region_name or "us-east-1"

    def _handle(self, job: SparkJob, cluster_id: str, job_id: str, details: dict[str, Any]) -> JobHandle:
        return JobHandle(
            backend=self.name,
            job_id=job_id,
            key=job.key,
            result_uri=job.result_uri,
            cluster_id=cluster_id,
            details={"region": self.region, **details},
        )

    def driver_log(self, handle: JobHandle) -> str | None:
        """The ``s3://`` URI of the job's driver log, None when the service names no log location."""
        raise NotImplementedError

    def _error_with_log_tail(self, head: str, handle: JobHandle, missing: str) -> str:
        """``head``, then the last lines of the driver log (or where it will be; ``missing`` when unknown)."""
        where = self.driver_log(handle)
        tail = read_log_tail(self.s3, where) if where and where.startswith("s3://") else None
        return with_log_tail(head, where, tail, missing)

    def read_result(self, handle: JobHandle) -> dict[str, Any]:
        """The job's metrics at ``handle.result_uri``, read with the backend's AWS connection."""
        if handle.result_uri.startswith("s3://"):
            return read_s3_json(self.s3, handle.result_uri) or {}
        return super().read_result(handle)

    def _log_links(self, log: str | None, folder_levels: int) -> dict[str, str]:
        """S3 console links to a driver log object and to the folder ``folder_levels`` above it."""
        if not log or not log.startswith("s3://"):
            return {}
        bucket, _, key = log[len("s3://") :].partition("/")
        folder = key.rsplit("/", folder_levels)[0] + "/"
        return {
            "job": f"{CONSOLE}/s3/buckets/{bucket}?region={self.region}&prefix={folder}",
            "driver_log": f"{CONSOLE}/s3/object/{bucket}?region={self.region}&prefix={key}",
        }
