"""The ``dataproc`` backend: Spark jobs as PySpark jobs on a Dataproc cluster, through the google provider's hooks.

Cluster: Dataproc names are unique per project and region, so the cluster named
``TRICLOUD_DATAPROC_CLUSTER_NAME`` is reused when it is RUNNING (or becomes so), else created with
``DataprocHook.create_cluster``: tricloud's labels, an idle-delete TTL (``lifecycleConfig.idleDeleteTtl``)
and the code bucket as staging bucket. Two traps of the provider's own operators are avoided:

* a cluster that ends up in ERROR is deleted (if it carries tricloud's label), never retried into;
* a cluster that disappears while it is being created (NOT_FOUND during CREATING, e.g. deleted by
  someone, or by Dataproc after a failed start) is an error, never taken for a success.

``stop`` deletes only a cluster labelled ``tricloud-managed=true`` with no active job; "not found" is
success. Jobs: the application and ``include/`` (zipped) are staged under ``TRICLOUD_GCS_CODE_URI``;
the job id is derived from the job key (:func:`tricloud.cluster.gcp.job_id`) and the request id from
it too, so a retry finds the job (``GetJob``) instead of starting a second one, and Dataproc refuses a
second job of that id anyway. The driver runs in YARN cluster mode (its environment from
``spark.yarn.appMasterEnv.*``, as on EMR); ``driverOutputResourceUri`` holds what spark-submit printed.
"""

from __future__ import annotations

import time
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tricloud.cluster import gcp
from tricloud.cluster.base import ClusterBackend, ClusterInfo, ClusterStatus, JobHandle, JobState, JobStatus, SparkJob
from tricloud.cluster.gcp_settings import DataprocSettings, dataproc_settings

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger

#: Dataproc ``JobStatus.State`` → ours. CANCEL_PENDING / CANCEL_STARTED are still active.
JOB_STATES = {
    "STATE_UNSPECIFIED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "SETUP_DONE": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCEL_PENDING": JobState.RUNNING,
    "CANCEL_STARTED": JobState.RUNNING,
    "DONE": JobState.SUCCEEDED,
    "ERROR": JobState.FAILED,
    "ATTEMPT_FAILURE": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}
CLUSTER_USABLE = ("RUNNING", "UPDATING")
CLUSTER_COMING = ("CREATING", "STARTING", "REPAIRING")
CLUSTER_BROKEN = ("ERROR", "ERROR_DUE_TO_UPDATE")
DRIVER_ENV = "spark.yarn.appMasterEnv."


class DataprocBackend(ClusterBackend):
    """Dataproc on Compute Engine through ``DataprocHook`` and ``GCSHook``. See the module docstring."""

    name = "dataproc"

    def __init__(self, settings: DataprocSettings) -> None:
        self.settings = settings
        self._cluster: str | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> DataprocBackend:
        """Settings from ``TRICLOUD_*`` variables and the connection (``gcp_settings.dataproc_settings``).

        :raises ValueError: a setting missing or malformed, or an unknown override (the message names it).
        """
        return cls(dataproc_settings(overrides, cls.name))

    # -- hooks ---------------------------------------------------------------------------------
    @cached_property
    def hook(self) -> gcp.DataprocEndpointHook:
        return gcp.DataprocEndpointHook(gcp_conn_id=self.settings.gcp_conn_id, api_endpoint=self.settings.api_endpoint)

    @cached_property
    def gcs(self) -> GCSHook:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return GCSHook(gcp_conn_id=self.settings.gcp_conn_id)

    @property
    def _where(self) -> dict[str, str]:
        return {"project_id": self.settings.project, "region": self.settings.region}

    # -- the cluster ---------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"dataproc://{self.settings.region}/{self._cluster or self.settings.cluster_name}"

    @property
    def ui_url(self) -> str | None:
        return self._cluster_link(self._cluster) if self._cluster else None

    def _cluster_link(self, name: str) -> str:
        s = self.settings
        return f"{gcp.CONSOLE}/dataproc/clusters/{name}/monitoring?region={s.region}&project={s.project}"

    def get_cluster(self, name: str | None = None) -> Any | None:
        """The cluster named ``name`` (default: the configured one), None when Dataproc does not know it."""
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.get_cluster(cluster_name=name or self.settings.cluster_name, **self._where)
        except NotFound:
            return None

    @staticmethod
    def _state(cluster: Any) -> str:
        return cluster.status.state.name

    def _active_jobs(self, name: str) -> list[str]:
        client = self.hook.get_job_client(self.settings.region)
        jobs = client.list_jobs(request={**self._where, "cluster_name": name, "job_state_matcher": "ACTIVE"})
        return [j.reference.job_id for j in jobs]

    def status(self) -> ClusterStatus:
        cluster = self.get_cluster(self._cluster)
        if cluster is None or self._state(cluster) not in (*CLUSTER_USABLE, *CLUSTER_COMING):
            return ClusterStatus(alive=False, workers=0, active_apps=0)
        workers = cluster.config.worker_config.num_instances
        return ClusterStatus(alive=True, workers=workers, active_apps=len(self._active_jobs(cluster.cluster_name)))

    def _info(self, cluster: Any, started: bool) -> ClusterInfo:
        self._cluster = cluster.cluster_name
        return ClusterInfo(
            backend=self.name,
            master_url=f"dataproc://{self.settings.region}/{cluster.cluster_name}",
            ui_url=self._cluster_link(cluster.cluster_name),
            started=started,
            workers=cluster.config.worker_config.num_instances or self.settings.workers,
            details={
                "cluster_uuid": cluster.cluster_uuid,
                "region": self.settings.region,
                "project": self.settings.project,
            },
            cluster_id=cluster.cluster_name,
        )

    def start(self, timeout: float = 900.0) -> ClusterInfo:
        """Reuse the cluster of this name when it is (or becomes) RUNNING, else create it and wait.

        A tricloud cluster found in ERROR is deleted and created afresh; one this call created that ends
        in ERROR, does not come up in time, or vanishes while being created is deleted (if still there)
        and the error raised.

        :raises RuntimeError: the cluster did not come up, vanished, or is someone else's and broken or stopped.
        :raises ValueError: ``LAKE_ROOT`` is not on GCS (before anything is created).
        """
        gcp.require_gcs_lake(self.name)
        timeout = max(timeout, self.settings.start_timeout)
        name = self.settings.cluster_name
        existing = self.get_cluster()
        if existing is not None:
            state = self._state(existing)
            if state in CLUSTER_BROKEN and existing.labels.get(gcp.MANAGED_LABEL) == "true":
                self.log_info("Dataproc cluster %s is %s: deleting it, then creating it afresh", name, state)
                self._delete(name, existing.cluster_uuid)
                self._wait_gone(name, timeout)
            elif state == "DELETING":
                self._wait_gone(name, timeout)
            elif state in (*CLUSTER_USABLE, *CLUSTER_COMING):
                self.log_info("Reusing Dataproc cluster %s (%s)", name, state)
                return self._info(self._wait_running(name, timeout, existing.cluster_uuid), started=False)
            else:
                raise RuntimeError(
                    f"Dataproc cluster {name} is {state} and not tricloud's to fix: start or delete it, or set "
                    "TRICLOUD_DATAPROC_CLUSTER_NAME to another name"
                )
        self.hook.create_cluster(
            cluster_name=name,
            cluster_config=gcp.cluster_config(self.settings),
            labels=gcp.labels(self.settings),
            request_id=uuid.uuid4().hex,
            **self._where,
        )
        self.log_info("Creating Dataproc cluster %s in %s", name, self.settings.region)
        try:
            cluster = self._wait_running(name, timeout, None)
        except BaseException as err:
            # A cluster left behind by a failed start costs money every hour: delete it before raising.
            left = self.get_cluster()
            if left is not None and self._state(left) != "DELETING":
                self._delete(name, left.cluster_uuid)
            if not isinstance(err, Exception):  # the task is being killed: let that propagate as it is
                raise
            raise RuntimeError(
                f"Dataproc cluster {name} did not start ({err}); {'it was deleted' if left else 'it is gone'}. "
                "See its status detail in the Dataproc console"
            ) from err
        return self._info(cluster, started=True)

    def _wait_running(self, name: str, timeout: float, cluster_uuid: str | None) -> Any:
        """Poll until the cluster is RUNNING; ``RuntimeError`` on ERROR, NOT_FOUND or another incarnation."""
        deadline = time.monotonic() + timeout
        while True:
            cluster = self.get_cluster(name)
            if cluster is None or (cluster_uuid and cluster.cluster_uuid != cluster_uuid):
                raise gcp.ClusterVanished(f"cluster {name} was deleted while it was being created: not a success")
            state = self._state(cluster)
            if state in CLUSTER_USABLE:
                return cluster
            if state not in CLUSTER_COMING:
                raise RuntimeError(f"cluster {name} is {state}: {cluster.status.detail or 'no detail'}")
            cluster_uuid = cluster_uuid or cluster.cluster_uuid
            if time.monotonic() >= deadline:
                raise TimeoutError(f"cluster {name} still {state} after {timeout:.0f}s")
            time.sleep(self.settings.poll_interval)

    def _wait_gone(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.get_cluster(name) is not None:
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Dataproc cluster {name} still exists after {timeout:.0f}s of deleting")
            time.sleep(self.settings.poll_interval)

    def _delete(self, name: str, cluster_uuid: str | None) -> bool:
        """Delete this incarnation of ``name`` (by its uuid); False when it is already gone."""
        from google.api_core.exceptions import NotFound

        try:
            self.hook.delete_cluster(
                cluster_name=name,
                cluster_uuid=cluster_uuid,
                request_id=gcp.request_id("delete", name, cluster_uuid or ""),
                **self._where,
            )
        except NotFound:
            return False
        self.log_info("Deleted Dataproc cluster %s (%s)", name, cluster_uuid)
        return True

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Delete cluster ``cluster_id`` (its name) if tricloud created it and no job runs on it.

        Returns False (nothing done) for a cluster that is gone or being deleted, one without the
        ``tricloud-managed=true`` label (someone else's), or one where another run's job is active (the
        idle-delete TTL ends it later).
        """
        if not cluster_id:
            return False
        cluster = self.get_cluster(cluster_id)
        if cluster is None or self._state(cluster) == "DELETING":
            return False
        if cluster.labels.get(gcp.MANAGED_LABEL) != "true":
            self.log_info("Dataproc cluster %s is not labelled %s=true: left running", cluster_id, gcp.MANAGED_LABEL)
            return False
        active = self._active_jobs(cluster_id)
        if active:
            self.log_info("Dataproc cluster %s still runs %d job(s): left to its idle TTL", cluster_id, len(active))
            return False
        return self._delete(cluster_id, cluster.cluster_uuid)

    # -- the jobs ------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Any | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.get_job(job_id=job_id, **self._where)
        except NotFound:
            return None

    def job_definition(self, job: SparkJob, staged: gcp.StagedCode, cluster: str) -> dict[str, Any]:
        """The ``Job`` of ``job``: a PySpark job in YARN cluster mode, its id from the key."""
        s = self.settings
        props = gcp.spark_properties(job, DRIVER_ENV)
        props.setdefault("spark.submit.deployMode", "cluster")
        props.setdefault("spark.app.name", job.name)
        return {
            "reference": {"project_id": s.project, "job_id": gcp.job_id(job.key)},
            "placement": {"cluster_name": cluster},
            "pyspark_job": {
                "main_python_file_uri": staged.application,
                "args": job.submitted_args,
                "python_file_uris": [staged.py_files],
                "properties": props,
            },
            "labels": {gcp.MANAGED_LABEL: "true", gcp.CREATED_BY_LABEL: gcp.label_value(s.created_by)},
        }

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the code and submit the job (id and request id from ``job.key``); an existing one is returned.

        :raises RuntimeError: no cluster name given and no usable cluster of the configured name.
        """
        from google.api_core.exceptions import Conflict

        cluster = cluster_id or self._cluster
        if not cluster:
            found = self.get_cluster()
            if found is None or self._state(found) not in CLUSTER_USABLE:
                raise RuntimeError(
                    f"no running Dataproc cluster named {self.settings.cluster_name!r}: start one first "
                    "(StartClusterOperator) or pass its name"
                )
            cluster = found.cluster_name
        self._cluster = cluster
        dp_id = gcp.job_id(job.key)
        existing = self.get_job(dp_id)
        if existing is not None:
            self.log_info("Job %s is already Dataproc job %s: not submitted again", job.key, dp_id)
            return self._handle(job, existing, {})
        gcp.require_gcs_lake(self.name, job)
        staged = gcp.stage_code(self.gcs, self.settings.code_uri, job)
        try:
            submitted = self.hook.submit_job(
                job=self.job_definition(job, staged, cluster), request_id=gcp.request_id("submit", dp_id), **self._where
            )
        except Conflict:  # ALREADY_EXISTS (HTTP 409): another process submitted it between our GetJob and SubmitJob
            submitted = self.get_job(dp_id)
        handle = self._handle(job, submitted, {"application": staged.application, "py_files": staged.py_files})
        self.log_info("Submitted Dataproc job %s; driver output: %s", dp_id, handle.details.get("driver_output"))
        return handle

    def _handle(self, job: SparkJob, dp_job: Any, details: dict) -> JobHandle:
        return JobHandle(
            backend=self.name,
            job_id=dp_job.reference.job_id,
            key=job.key,
            result_uri=job.result_uri,
            cluster_id=dp_job.placement.cluster_name,
            details={
                "region": self.settings.region,
                "project": self.settings.project,
                "driver_output": dp_job.driver_output_resource_uri or None,
                **details,
            },
        )

    def job_status(self, handle: JobHandle) -> JobStatus:
        status = self.hook.get_job(job_id=handle.job_id, **self._where).status
        raw = status.state.name
        return JobStatus(state=JOB_STATES.get(raw, JobState.RUNNING), raw=raw, message=status.details or None)

    def cancel(self, handle: JobHandle) -> None:
        if self.job_status(handle).state.terminal:
            return
        self.hook.cancel_job(job_id=handle.job_id, **self._where)
        self.log_info("Cancelled Dataproc job %s on %s", handle.job_id, handle.cluster_id)

    def driver_log(self, handle: JobHandle) -> str | None:
        """The job's ``driverOutputResourceUri`` (objects ``<uri>.000000000``, … in the staging bucket)."""
        return self.hook.get_job(job_id=handle.job_id, **self._where).driver_output_resource_uri or None

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """Dataproc's status detail, then the tail of the driver output."""
        head = status.message or f"job {handle.job_id} ended {status.raw}"
        where = self.driver_log(handle)
        tail = gcp.log_tail(self.gcs, where)
        if tail:
            return f"{head}\n--- {where} (last lines) ---\n{tail}"
        return f"{head}\n(driver output: {where or 'none recorded'})"

    def log_lines(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        """New complete lines of the driver output since byte ``offset`` (Dataproc writes it as the job runs)."""
        return gcp.new_lines(self.gcs, handle.details.get("driver_output") or self.driver_log(handle), offset)

    def read_result(self, handle: JobHandle) -> dict[str, Any]:
        """The job's metrics at ``handle.result_uri``, read with the backend's Google Cloud connection."""
        if handle.result_uri.startswith("gs://"):
            return gcp.read_gcs_json(self.gcs, handle.result_uri) or {}
        return super().read_result(handle)

    def trigger(self, handle: JobHandle, poll_interval: float) -> DataprocSubmitTrigger | None:
        """The provider's ``DataprocSubmitTrigger`` (``cancel_on_kill``); None with a custom ``api_endpoint``
        (the provider's async hook always talks gRPC to Google's endpoint, so the task polls instead)."""
        if self.settings.api_endpoint:
            return None
        from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger

        return DataprocSubmitTrigger(
            job_id=handle.job_id,
            project_id=self.settings.project,
            region=self.settings.region,
            gcp_conn_id=self.settings.gcp_conn_id,
            polling_interval_seconds=max(1, round(poll_interval)),
            cancel_on_kill=True,
        )

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        """The cluster's console page, the job's page and the driver output in the Storage console."""
        cluster = (handle.cluster_id if handle else None) or self._cluster
        links = {"cluster": self._cluster_link(cluster)} if cluster else {}
        if handle:
            s = self.settings
            links["job"] = f"{gcp.CONSOLE}/dataproc/jobs/{handle.job_id}?region={s.region}&project={s.project}"
            output = handle.details.get("driver_output") or self.driver_log(handle)
            if output:
                links["driver_log"] = gcp.storage_link(output)
        return links

    def log_info(self, msg: str, *args: Any) -> None:
        self.hook.log.info(msg, *args)
