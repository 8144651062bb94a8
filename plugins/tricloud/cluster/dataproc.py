"""The ``dataproc`` backend: Spark jobs as PySpark jobs on a Dataproc cluster, through the google provider's hooks.

Cluster: the one named ``TRICLOUD_DATAPROC_CLUSTER_NAME`` is reused when it takes jobs (RUNNING,
UPDATING, ERROR_DUE_TO_UPDATE) or is coming up, else created (``DataprocHook.create_cluster``) with
tricloud's labels, an idle-delete TTL and the code bucket as staging bucket; a create that loses the race
to another run (ALREADY_EXISTS) reuses theirs. Traps of the provider's own operators are avoided: a
tricloud cluster in ERROR is deleted (when no job is active on it), never retried into; one that vanishes
while being created is an error, never a success. ``cluster_id`` is ``name/uuid``: ``stop`` and the
failed-start cleanup delete by uuid, so a later incarnation of the name (ours deleted by its idle TTL,
another run's created since) is never deleted; ``stop`` also needs the ``tricloud-managed=true`` label
and no active job. Jobs: code staged under ``TRICLOUD_GCS_CODE_URI``; job id and request id derived from
the job key, so a retry finds the job (``GetJob``) instead of starting a second one. YARN cluster mode
(driver environment from ``spark.yarn.appMasterEnv.*``); ``driverOutputResourceUri`` holds its output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tricloud.cluster import gcp, gcs_output
from tricloud.cluster.base import (
    ClusterInfo,
    ClusterStatus,
    JobHandle,
    JobState,
    JobStatus,
    SparkJob,
    wait_or_tear_down,
)

if TYPE_CHECKING:
    from airflow.providers.google.cloud.triggers.dataproc import DataprocSubmitTrigger

    from tricloud.cluster.gcp_settings import DataprocSettings

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
#: Cluster states that take jobs. ERROR_DUE_TO_UPDATE: an update failed, but "jobs can be submitted to the
#: cluster" (``ClusterStatus.State`` in google-cloud-dataproc), so it is used, not deleted.
CLUSTER_USABLE = ("RUNNING", "UPDATING", "ERROR_DUE_TO_UPDATE")
CLUSTER_COMING = ("CREATING", "STARTING", "REPAIRING")
CLUSTER_BROKEN = ("ERROR",)


class DataprocBackend(gcp.GcpBackend):
    """Dataproc on Compute Engine through ``DataprocHook`` and ``GCSHook``. See the module docstring."""

    name = "dataproc"

    def __init__(self, settings: DataprocSettings) -> None:
        super().__init__(settings)
        self._cluster: str | None = None  # name/uuid of the cluster this backend started or reused

    @property
    def master_url(self) -> str:
        return f"dataproc://{self.settings.region}/{gcp.cluster_ref(self._cluster or self.settings.cluster_name)[0]}"

    @property
    def ui_url(self) -> str | None:
        return self._cluster_link(gcp.cluster_ref(self._cluster)[0]) if self._cluster else None

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
        cluster = self.get_cluster(gcp.cluster_ref(self._cluster)[0] if self._cluster else None)
        if cluster is None or self._state(cluster) not in (*CLUSTER_USABLE, *CLUSTER_COMING):
            return ClusterStatus(alive=False, workers=0, active_apps=0)
        workers = cluster.config.worker_config.num_instances
        return ClusterStatus(alive=True, workers=workers, active_apps=len(self._active_jobs(cluster.cluster_name)))

    def _info(self, cluster: Any, started: bool) -> ClusterInfo:
        # name/uuid: the teardown then deletes this incarnation only, never a later one of the same name.
        self._cluster = f"{cluster.cluster_name}/{cluster.cluster_uuid}"
        return ClusterInfo(
            backend=self.name,
            master_url=self.master_url,
            ui_url=self.ui_url,
            started=started,
            workers=cluster.config.worker_config.num_instances or self.settings.workers,
            details={
                "cluster_uuid": cluster.cluster_uuid,
                "region": self.settings.region,
                "project": self.settings.project,
            },
            cluster_id=self._cluster,
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
        replaced = ""  # uuid of a broken incarnation this call deleted: part of the create's request id
        existing = self.get_cluster()
        if existing is not None:
            state = self._state(existing)
            if state in CLUSTER_BROKEN and existing.labels.get(gcp.MANAGED_LABEL) == "true":
                active = self._active_jobs(name)
                if active:
                    raise RuntimeError(
                        f"Dataproc cluster {name} is {state} but still has {len(active)} active job(s) "
                        f"({', '.join(active[:3])}): left as it is; retry when they have ended, or set "
                        "TRICLOUD_DATAPROC_CLUSTER_NAME to another name"
                    )
                self.log_info("Dataproc cluster %s is %s: deleting it, then creating it afresh", name, state)
                self._delete(name, existing.cluster_uuid)
                self._wait_gone(name, timeout)
                replaced = existing.cluster_uuid
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
        if not self._create(name, replaced):
            self.log_info("Dataproc cluster %s was created by another run meanwhile: reusing it", name)
            return self._info(self._wait_running(name, timeout, None), started=False)
        self.log_info("Creating Dataproc cluster %s in %s", name, self.settings.region)
        seen: list[str] = []  # the uuid of the incarnation this call created, once a GET shows it
        cluster = wait_or_tear_down(
            lambda: self._wait_running(name, timeout, None, seen),
            # Only the incarnation first seen: another run may have created a new one of the same name.
            lambda: bool(seen) and self._delete(name, seen[0]),
            lambda err, deleted: (
                f"Dataproc cluster {name} did not start ({err}); {'it was deleted' if deleted else 'it is gone'}. "
                "See its status detail in the Dataproc console"
            ),
        )
        return self._info(cluster, started=True)

    def _create(self, name: str, replaced: str) -> bool:
        """Ask Dataproc to create cluster ``name``; False when it exists already (another run won the race).

        The request id comes from the name, ``created_by`` and the incarnation this start replaced: the same
        create sent twice is one request. Dataproc answers a repeated id with the first request's operation;
        if that has finished and its cluster is gone (this process created and deleted the name before), the
        create is sent again under an id derived from that operation."""
        from google.api_core.exceptions import Conflict

        request_id = gcp.request_id("create", name, self.settings.created_by, replaced)
        for _ in range(2):
            try:
                op = self.hook.create_cluster(
                    cluster_name=name,
                    cluster_config=gcp.cluster_config(self.settings),
                    labels=gcp.labels(self.settings),
                    request_id=request_id,
                    **self._where,
                )
            except Conflict:  # ALREADY_EXISTS (HTTP 409): created between our GET and our create
                return False
            if not (op.operation.done and self.get_cluster(name) is None):
                break
            request_id = gcp.request_id("create", name, self.settings.created_by, op.operation.name)
        return True

    def _wait_running(self, name: str, timeout: float, cluster_uuid: str | None, seen: list[str] | None = None) -> Any:
        """Poll until the cluster takes jobs; ``RuntimeError`` on ERROR, NOT_FOUND or another incarnation.

        :param seen: when given, the uuid of the incarnation being waited for is appended once known.
        """
        deadline = time.monotonic() + timeout
        while True:
            cluster = self.get_cluster(name)
            if cluster is None or (cluster_uuid and cluster.cluster_uuid != cluster_uuid):
                raise gcp.ClusterVanished(f"cluster {name} was deleted while it was being created: not a success")
            if not cluster_uuid:
                cluster_uuid = cluster.cluster_uuid
                if seen is not None:
                    seen.append(cluster_uuid)
            state = self._state(cluster)
            if state in CLUSTER_USABLE:
                return cluster
            if state not in CLUSTER_COMING:
                raise RuntimeError(f"cluster {name} is {state}: {cluster.status.detail or 'no detail'}")
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
        """Delete this incarnation of ``name`` (by its uuid); False when it is already gone or being deleted.

        With ``cluster_uuid`` Dataproc refuses another incarnation of the name (FAILED_PRECONDITION): ours is
        gone then, which counts as done.
        """
        from google.api_core.exceptions import NotFound

        request_id = gcp.request_id("delete", name, cluster_uuid or "")
        try:
            refused = gcp.precondition_failed(
                lambda: self.hook.delete_cluster(
                    cluster_name=name, cluster_uuid=cluster_uuid, request_id=request_id, **self._where
                )
            )
        except NotFound:
            return False
        if refused:
            self.log_info("Dataproc cluster %s (%s) not deleted: %s", name, cluster_uuid, refused)
            return False
        self.log_info("Deleted Dataproc cluster %s (%s)", name, cluster_uuid)
        return True

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Delete cluster ``cluster_id`` (``name/uuid``; a bare name is accepted) if tricloud created it and no
        job runs on it, deleting by uuid so that only that incarnation can go.

        Returns False (nothing done) for a cluster that is gone or being deleted, another incarnation of the
        name (ours was deleted, e.g. by its idle TTL, and another run created a new one), one without the
        ``tricloud-managed=true`` label (someone else's), or one where another run's job is active (the
        idle-delete TTL ends it later).
        """
        if not cluster_id:
            return False
        name, cluster_uuid = gcp.cluster_ref(cluster_id)
        cluster = self.get_cluster(name)
        if cluster is None or self._state(cluster) == "DELETING":
            return False
        if cluster.labels.get(gcp.MANAGED_LABEL) != "true":
            self.log_info("Dataproc cluster %s is not labelled %s=true: left running", name, gcp.MANAGED_LABEL)
            return False
        active = self._active_jobs(name)
        if active:
            self.log_info("Dataproc cluster %s still runs %d job(s): left to its idle TTL", name, len(active))
            return False
        # Dataproc refuses the delete if the name now belongs to another incarnation (FAILED_PRECONDITION).
        return self._delete(name, cluster_uuid or cluster.cluster_uuid)

    # -- the jobs ------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Any | None:
        """Dataproc job ``job_id`` (a ``google.cloud.dataproc_v1.Job``) in the configured project and region;
        None when Dataproc does not know it (NOT_FOUND). Other API errors propagate."""
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.get_job(job_id=job_id, **self._where)
        except NotFound:
            return None

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the code and submit the job (id and request id from ``job.key``); an existing one is returned.

        :param cluster_id: ``name/uuid`` from :meth:`start` (a bare name is accepted); default: the cluster
            this backend started, else the configured name if it takes jobs.
        :raises RuntimeError: no cluster name given and no usable cluster of the configured name; or Dataproc
            said the job exists but does not return it.
        """
        from google.api_core.exceptions import Conflict

        cluster = gcp.cluster_ref(cluster_id or self._cluster)[0] if (cluster_id or self._cluster) else None
        if not cluster:
            found = self.get_cluster()
            if found is None or self._state(found) not in CLUSTER_USABLE:
                raise RuntimeError(
                    f"no running Dataproc cluster named {self.settings.cluster_name!r}: start one first "
                    "(StartClusterOperator) or pass its name"
                )
            cluster = found.cluster_name
        dp_id = gcp.job_id(job.key)
        existing = self.get_job(dp_id)
        if existing is not None:
            self.log_info("Job %s is already Dataproc job %s: not submitted again", job.key, dp_id)
            return self._job_handle(job, existing, {})
        gcp.require_gcs_lake(self.name, job)
        staged = gcp.stage_code(self.gcs, self.settings.code_uri, job)
        try:
            submitted = self.hook.submit_job(
                job=gcp.pyspark_job(self.settings, job, staged, cluster),
                request_id=gcp.request_id("submit", dp_id),
                **self._where,
            )
        except Conflict as err:  # ALREADY_EXISTS (HTTP 409): submitted by another process since our GetJob
            submitted = self.get_job(dp_id)
            if submitted is None:
                raise RuntimeError(
                    f"Dataproc says job {dp_id} exists ({err.message}) but GetJob does not find it in "
                    f"{self.settings.project}/{self.settings.region}: check TRICLOUD_GCP_PROJECT and "
                    "TRICLOUD_DATAPROC_REGION, then retry the task (the job id is the same, nothing runs twice)"
                ) from err
        handle = self._job_handle(job, submitted, {"application": staged.application, "py_files": staged.py_files})
        self.log_info("Submitted Dataproc job %s; driver output: %s", dp_id, handle.details.get("driver_output"))
        return handle

    def _job_handle(self, job: SparkJob, dp_job: Any, details: dict) -> JobHandle:
        where = dp_job.placement
        cluster = f"{where.cluster_name}/{where.cluster_uuid}" if where.cluster_uuid else where.cluster_name
        output = dp_job.driver_output_resource_uri or None
        return self._handle(job, dp_job.reference.job_id, cluster, {"driver_output": output, **details})

    def job_status(self, handle: JobHandle) -> JobStatus:
        """The job's state (Dataproc's ``JobStatus.State`` mapped by ``JOB_STATES``; ``raw`` keeps its name) and
        Dataproc's status detail as ``message``.

        :raises google.api_core.exceptions.NotFound: Dataproc does not know the job (any more).
        """
        status = self.hook.get_job(job_id=handle.job_id, **self._where).status
        raw = status.state.name
        return JobStatus(state=JOB_STATES.get(raw, JobState.RUNNING), raw=raw, message=status.details or None)

    def cancel(self, handle: JobHandle) -> None:
        """Cancel the job (``CancelJob``) unless it has ended. A job that ends between our read and the cancel
        is FAILED_PRECONDITION at Dataproc: nothing left to cancel, not an error."""
        if self.job_status(handle).state.terminal:
            return
        refused = gcp.precondition_failed(lambda: self.hook.cancel_job(job_id=handle.job_id, **self._where))
        if refused:
            self.log_info("Dataproc job %s ended before the cancel: %s", handle.job_id, refused)
            return
        self.log_info("Cancelled Dataproc job %s on %s", handle.job_id, handle.cluster_id)

    def driver_log(self, handle: JobHandle) -> str | None:
        """The job's ``driverOutputResourceUri`` (objects ``<uri>.000000000``, … in the staging bucket)."""
        return self.hook.get_job(job_id=handle.job_id, **self._where).driver_output_resource_uri or None

    def log_lines(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        """New complete lines of the driver output since byte ``offset`` (Dataproc writes it as the job runs)."""
        return gcs_output.new_lines(self.gcs, handle.details.get("driver_output") or self.driver_log(handle), offset)

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
        links = {"cluster": self._cluster_link(gcp.cluster_ref(cluster)[0])} if cluster else {}
        if handle:
            s = self.settings
            links["job"] = f"{gcp.CONSOLE}/dataproc/jobs/{handle.job_id}?region={s.region}&project={s.project}"
            output = handle.details.get("driver_output") or self.driver_log(handle)
            if output:
                links["driver_log"] = gcp.storage_link(output)
        return links
