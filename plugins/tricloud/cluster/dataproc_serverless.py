"""The ``dataproc-serverless`` backend: Spark jobs as Dataproc Serverless batches, through ``DataprocHook``.

Nothing to start or stop: a batch brings its own machines and gives them back when it ends (``start``
checks the settings and the lake and returns; ``stop`` has nothing to do). The application and
``include/`` (zipped) are staged under ``TRICLOUD_GCS_CODE_URI``; the batch id is derived from the job
key (:func:`tricloud.cluster.gcp.batch_id`), and so is the request id, so a retry finds the batch
(``GetBatch``) instead of starting a second one (Dataproc refuses a second batch of that id anyway).
The driver's environment goes through ``spark.dataproc.driverEnv.*``; its output is at the batch's
``runtimeInfo.outputUri``. Cancel: the batch's long-running operation is cancelled (``CancelOperation``),
as ``gcloud dataproc batches cancel`` does (:func:`tricloud.cluster.gcp.cancel_batch`) — by the task's
``on_kill`` when it polls, by :class:`tricloud.cluster.triggers.DataprocBatchTrigger`'s ``on_kill`` when
it is deferred (the provider's trigger of that name has none).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from tricloud.cluster import gcp, gcs_output
from tricloud.cluster.base import ClusterInfo, ClusterStatus, JobHandle, JobState, JobStatus, SparkJob

if TYPE_CHECKING:
    from tricloud.cluster.triggers import DataprocBatchTrigger

#: ``Batch.State`` → ours.
BATCH_STATES = {
    "STATE_UNSPECIFIED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCELLING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}
DRIVER_ENV = "spark.dataproc.driverEnv."


class DataprocServerlessBackend(gcp.GcpBackend):
    """Dataproc Serverless batches through ``DataprocHook`` and ``GCSHook``. See the module docstring."""

    name = "dataproc-serverless"

    # -- no cluster ----------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"dataproc-serverless://{self.settings.project}/{self.settings.region}"

    @property
    def ui_url(self) -> str | None:
        s = self.settings
        return f"{gcp.CONSOLE}/dataproc/batches?project={s.project}&region={s.region}"

    def status(self) -> ClusterStatus:
        return ClusterStatus(alive=True, workers=0, active_apps=0)

    def start(self, timeout: float = 60.0) -> ClusterInfo:
        """Nothing to start: checks the lake and returns (``started=False``, so no teardown is asked for).

        :raises ValueError: ``LAKE_ROOT`` is not on GCS.
        """
        gcp.require_gcs_lake(self.name)
        return ClusterInfo(
            backend=self.name,
            master_url=self.master_url,
            ui_url=self.ui_url,
            started=False,
            workers=0,
            details={"project": self.settings.project, "region": self.settings.region},
            cluster_id=None,
        )

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Nothing to stop: each batch releases its machines when it ends."""
        return False

    # -- the jobs ------------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> Any | None:
        """Batch ``batch_id`` (a ``google.cloud.dataproc_v1.Batch``); None when Dataproc does not know it."""
        from google.api_core.exceptions import NotFound

        try:
            return self.hook.get_batch(batch_id=batch_id, **self._where)
        except NotFound:
            return None

    def batch_definition(self, job: SparkJob, staged: gcp.StagedCode) -> dict[str, Any]:
        """The ``Batch`` of ``job`` (its id is passed apart, as ``batchId``)."""
        s = self.settings
        props = gcp.spark_properties(job, DRIVER_ENV)
        props.setdefault("spark.app.name", job.name)
        execution: dict[str, Any] = {"staging_bucket": s.staging_bucket}
        if s.service_account:
            execution["service_account"] = s.service_account
        return {
            "pyspark_batch": {
                "main_python_file_uri": staged.application,
                "args": job.submitted_args,
                "python_file_uris": [staged.py_files],
            },
            "runtime_config": {"version": s.runtime_version, "properties": props},
            "environment_config": {"execution_config": execution},
            "labels": {gcp.MANAGED_LABEL: "true", gcp.CREATED_BY_LABEL: gcp.label_value(s.created_by)},
        }

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the code and create the batch (id and request id from ``job.key``); an existing one is returned."""
        from google.api_core.exceptions import Conflict

        b_id = gcp.batch_id(job.key)
        existing = self.get_batch(b_id)
        if existing is not None:
            self.log_info("Job %s is already batch %s: not created again", job.key, b_id)
            return self._handle(job, b_id, None, {})
        gcp.require_gcs_lake(self.name, job)
        staged = gcp.stage_code(self.gcs, self.settings.code_uri, job)
        # ALREADY_EXISTS (HTTP 409): another process created it between our GetBatch and CreateBatch.
        with contextlib.suppress(Conflict):
            # Not DataprocHook.create_batch: it names the parent projects/P/regions/R, which the REST
            # binding refuses (the API's parent is projects/P/locations/L; gRPC does not check it).
            self.hook.get_batch_client(self.settings.region).create_batch(
                request={
                    "parent": f"projects/{self.settings.project}/locations/{self.settings.region}",
                    "batch": self.batch_definition(job, staged),
                    "batch_id": b_id,
                    "request_id": gcp.request_id("batch", b_id),
                }
            )
        self.log_info("Created Dataproc Serverless batch %s (%s)", b_id, job.key)
        return self._handle(job, b_id, None, {"application": staged.application, "py_files": staged.py_files})

    def _batch(self, handle: JobHandle) -> Any:
        return self.hook.get_batch(batch_id=handle.job_id, **self._where)

    def job_status(self, handle: JobHandle) -> JobStatus:
        """The batch's state (``Batch.State`` mapped by ``BATCH_STATES``; ``raw`` keeps its name) and its
        ``stateMessage`` as ``message``.

        :raises google.api_core.exceptions.NotFound: Dataproc does not know the batch (any more).
        """
        batch = self._batch(handle)
        raw = batch.state.name
        return JobStatus(state=BATCH_STATES.get(raw, JobState.RUNNING), raw=raw, message=batch.state_message or None)

    def cancel(self, handle: JobHandle) -> None:
        """Cancel the batch unless it has ended (:func:`tricloud.cluster.gcp.cancel_batch`); what the task's
        ``on_kill`` calls when it polls."""
        gcp.cancel_batch(self.hook, self.settings.project, self.settings.region, handle.job_id)

    def driver_log(self, handle: JobHandle) -> str | None:
        """The batch's ``runtimeInfo.outputUri`` (the driver's output), None before it runs."""
        return self._batch(handle).runtime_info.output_uri or None

    def log_lines(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        """New complete lines of the driver output since byte ``offset``."""
        return gcs_output.new_lines(self.gcs, self.driver_log(handle), offset)

    def trigger(self, handle: JobHandle, poll_interval: float) -> DataprocBatchTrigger | None:
        """:class:`tricloud.cluster.triggers.DataprocBatchTrigger` (the provider's, plus cancel on kill); None with
        a custom ``api_endpoint`` (the provider's async hook talks gRPC to Google's endpoint only: the task polls,
        and its ``on_kill`` cancels)."""
        if self.settings.api_endpoint:
            return None
        from tricloud.cluster.triggers import DataprocBatchTrigger

        return DataprocBatchTrigger(
            batch_id=handle.job_id,
            project_id=self.settings.project,
            region=self.settings.region,
            gcp_conn_id=self.settings.gcp_conn_id,
            polling_interval_seconds=max(1, round(poll_interval)),
        )

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        """The batches page, the batch's page and its driver output in the Storage console."""
        s = self.settings
        links = {"cluster": self.ui_url} if self.ui_url else {}
        if handle:
            links["job"] = f"{gcp.CONSOLE}/dataproc/batches/{s.region}/{handle.job_id}?project={s.project}"
            output = self.driver_log(handle)
            if output:
                links["driver_log"] = gcp.storage_link(output)
        return links
