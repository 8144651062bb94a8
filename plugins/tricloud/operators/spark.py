"""Run a PySpark job from ``include/jobs`` on the cluster backend the deployment is configured with."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin
from airflow.providers.common.compat.sdk import conf as airflow_conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.errors import MissingFileConfigError
from include.jobs import DATA_ERROR_EXIT
from include.lease import LEASE_LOST_EXIT
from tricloud import retries
from tricloud.links import (
    ClusterConsoleLink,
    DriverLogLink,
    JobPageLink,
    SparkApplicationLink,
    SparkMasterUILink,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from tricloud.cluster import ClusterBackend, JobHandle, JobStatus, SparkJob

#: Key of the job handle (JSON) in the task's ``task_state_store``; renaming it breaks in-flight retries.
JOB_HANDLE_KEY = "tricloud_spark_job"


def lease_lost(message: str | BaseException | None, exit_code: int | None = None) -> bool:
    """Whether the job exited with :data:`include.lease.LEASE_LOST_EXIT` (it lost the hour's lease).

    The provider's SparkSubmitHook reports the exit code only in its message ("Error code is: N.").
    """
    if exit_code is not None:
        return exit_code == LEASE_LOST_EXIT
    m = re.search(r"Error code is: (\d+)", str(message or ""))
    return m is not None and int(m.group(1)) == LEASE_LOST_EXIT


#: The names of the deterministic errors a job can raise (``include.errors.DeterministicError`` and every
#: subclass of it in include/), for a backend that reports only the driver log's tail (no exit code).
#: Kept by hand so the operator imports none of the job modules; tests/unit/test_spark_retry_policy.py
#: walks the subclasses and fails when one is missing here.
DATA_ERROR_NAMES = (
    "DeterministicError",
    "ConfigError",
    "MissingFileConfigError",
    "UnsupportedPathError",
    "ObjectStoreLakeNotSupported",
    "QualitySettingError",
    "InputError",
    "MissingInputError",
    "NoInputError",
    "InputFormatError",
    "QualityInputError",
    "ChecksumError",
    "CheckFailedError",
    "QualityGateFailedError",
    "ReplicaCheckFailedError",
)
#: One of them as Python prints a raised exception: the name (module path or not) followed by ": ", so a
#: log line that merely mentions a name ("retrying after a ConfigError") is not taken for the job's error.
_DATA_ERROR_LINE = re.compile(r"(?<![\w.])(?:[A-Za-z_][\w]*\.)*(?:" + "|".join(DATA_ERROR_NAMES) + r"): ")


def data_error(message: str | BaseException | None, exit_code: int | None = None) -> bool:
    """Whether the job failed on its input (:data:`include.jobs.DATA_ERROR_EXIT`): no retry can fix that.

    The exit code when the backend knows it; else the SparkSubmitHook's "Error code is: N." or the
    error's name in the driver's message (a backend that reports only the log tail, e.g. EMR).
    """
    if exit_code is not None:
        return exit_code == DATA_ERROR_EXIT
    text = str(message or "")
    m = re.search(r"Error code is: (\d+)", text)
    if m is not None:
        return int(m.group(1)) == DATA_ERROR_EXIT
    return _DATA_ERROR_LINE.search(text) is not None


class SparkJobDataError(AirflowException):
    """The Spark job failed on its input or a setting (the hour's input is missing, the file is unusable,
    a setting the job needs is wrong: any ``include.errors.DeterministicError`` raised in the job).

    Deterministic: the same input fails the same way, so :data:`SPARK_RETRY_POLICY` fails the task on
    its first try instead of retrying it. Fix the input, then clear the task.
    """


#: The Spark tasks' retry policy: the pipelines' shared one (:data:`tricloud.retries.RETRY_POLICY`), which
#: fails a :class:`SparkJobDataError` at once and retries a lost worker or a cluster that is down.
SPARK_RETRY_POLICY = retries.RETRY_POLICY


class SparkJobOperator(ResumableJobMixin, BaseOperator):
    """
    Run a PySpark application on the configured cluster backend and return the metrics it wrote.

    The backend comes from configuration (``TRICLOUD_CLUSTER_BACKEND``: ``local`` by default, ``emr``,
    ``emr-serverless``), never from the DAG file. The operator builds a :class:`~tricloud.cluster.SparkJob`
    whose idempotency key is the task attempt (:func:`~tricloud.cluster.job_key`) and whose metrics go
    to ``$LAKE_ROOT/_jobs/<key>/metrics.json`` (``--metrics-file``): in cluster deploy mode the driver
    runs elsewhere, so the lake, not a local file, carries them back. The result (XCom) is those
    metrics plus ``application``.

    Resumable (Airflow's ``ResumableJobMixin``): the job's handle is kept in ``task_state_store``; a
    retry after the worker died re-attaches to the still-running job instead of submitting a second
    one (and returns its metrics). Deferrable: with ``deferrable=True`` and a backend that offers a
    trigger (the cloud backends), the worker slot is released while the job runs; the local backend
    has none and polls. Killing the task cancels the job. A job exiting with
    ``include.lease.LEASE_LOST_EXIT`` fails the task without retry; one that failed on its input
    (``include.jobs.DATA_ERROR_EXIT``) raises :class:`SparkJobDataError`, which the default
    ``retry_policy`` (:data:`SPARK_RETRY_POLICY`) fails without retry too. On failure the exception and the
    task log carry the driver's error and where the full driver log is.

    :param application: path of the ``.py`` file to submit. (templated)
    :param application_args: arguments for the application, e.g. the hour to process. (templated)
    :param conf: Spark configuration, e.g. ``{"spark.cores.max": "1"}``. (templated)
    :param conn_id: the backend's connection (local: the Spark connection, default ``spark_default``);
        None for the backend's default. (templated)
    :param name: Spark application name. (templated)
    :param executor_memory: memory per executor, e.g. ``768m``.
    :param driver_memory: driver memory, e.g. ``1g``.
    :param env_vars: extra environment for the driver.
    :param lost_cluster_timeout: local backend: seconds without a live worker (or master) before the
        job is stopped and fails saying so (Spark would wait for resources forever).
    :param backend_kwargs: extra settings for the backend (tests: ports and state dir).
    :param deferrable: release the worker slot while the job runs (default ``[operators]
        default_deferrable``).
    :param poll_interval: seconds between two status checks.
    """

    template_fields: Sequence[str] = ("application", "application_args", "conf", "conn_id", "name")
    template_fields_renderers: ClassVar[dict[str, str]] = {"conf": "json", "application_args": "py"}
    ui_color = "#ffe9a8"
    operator_extra_links = (
        SparkMasterUILink(),
        SparkApplicationLink(),
        ClusterConsoleLink(),
        JobPageLink(),
        DriverLogLink(),
    )
    external_id_key = JOB_HANDLE_KEY

    def __init__(
        self,
        *,
        application: str,
        application_args: list[str] | None = None,
        conf: dict[str, Any] | None = None,
        conn_id: str | None = None,
        name: str | None = None,
        executor_memory: str | None = None,
        driver_memory: str | None = None,
        env_vars: dict[str, str] | None = None,
        lost_cluster_timeout: float = 60.0,
        backend_kwargs: dict[str, Any] | None = None,
        deferrable: bool = airflow_conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retry_policy", SPARK_RETRY_POLICY)
        super().__init__(**kwargs)
        self.application = application
        self.application_args = application_args
        self.conf = conf
        self.conn_id = conn_id
        self.name = name
        self.executor_memory = executor_memory
        self.driver_memory = driver_memory
        self.env_vars = env_vars
        self.lost_cluster_timeout = lost_cluster_timeout
        self.backend_kwargs = backend_kwargs or {}
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self._handle: JobHandle | None = None
        self._result: dict[str, Any] | None = None
        # Read by the extra links once the task ran.
        self.spark_ui_url: str | None = None
        self.spark_application_id: str | None = None
        self.console_links: dict[str, str] = {}

    # -- the backend ------------------------------------------------------------------------------
    @cached_property
    def backend(self) -> ClusterBackend:
        """The configured backend (``TRICLOUD_CLUSTER_BACKEND``), built on first use, never at parse time."""
        from tricloud.cluster import backend_from_settings, backend_name

        overrides = dict(self.backend_kwargs)
        if self.conn_id:
            overrides["conn_id"] = self.conn_id
        if backend_name() == "local":
            overrides.setdefault("lost_cluster_timeout", self.lost_cluster_timeout)
        backend = backend_from_settings(**overrides)
        self.spark_ui_url = backend.ui_url
        self.console_links = backend.console_links(None)
        return backend

    def build_job(self, context: Context) -> SparkJob:
        """The job of this task attempt: key from the run's identity, metrics under ``$LAKE_ROOT/_jobs``."""
        from tricloud import settings
        from tricloud.cluster import SparkJob, job_key

        ti = context.get("ti")
        run_id = context.get("run_id")
        if run_id and ti is not None:
            key = job_key(ti.dag_id, ti.task_id, run_id, ti.map_index, ti.try_number)
        else:  # a direct execute() outside a DAG run: nothing to re-attach to, a key of its own
            key = job_key(self.dag_id, self.task_id, f"adhoc-{uuid.uuid4().hex}")
        return SparkJob(
            key=key,
            name=self.name or f"{self.dag_id}.{self.task_id}",
            application=self.application,
            args=tuple(str(a) for a in self.application_args or []),
            result_uri=f"{settings.lake_root().rstrip('/')}/_jobs/{key}/metrics.json",
            conf={str(k): str(v) for k, v in (self.conf or {}).items()},
            executor_memory=self.executor_memory,
            driver_memory=self.driver_memory,
            env=dict(self.env_vars or {}),
        )

    # -- execution --------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        self.backend  # noqa: B018 (fail fast on a missing connection or setting, and set the links)
        if not Path(self.application).is_file():
            raise MissingFileConfigError(f"Spark application {self.application} does not exist")
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> dict:
        from dataclasses import replace

        job = self.build_job(context)
        handle = self.backend.submit(job)
        ti = context.get("ti")
        if ti is not None:  # which try started the job: a re-attaching retry adopts it (tricloud.hour_lease.fence)
            handle = replace(handle, details={**handle.details, "try_number": ti.try_number})
        self._handle = handle
        self.console_links = self.backend.console_links(self._handle)
        self.log.info("Submitted %s as job %s on the %s backend", job.application, job.key, self._handle.backend)
        return self._handle.to_json()

    def get_job_status(self, external_id: Any, context: Context) -> str:
        from tricloud.cluster import JobState

        handle = self._as_handle(external_id)
        if handle.backend != self.backend.name:
            # Stored by a try on another backend (the deployment switched, e.g. local -> emr): that job
            # cannot be asked about here; report it ended so the mixin submits afresh.
            self.log.warning(
                "Ignoring job %s stored by the %s backend: this deployment uses %s",
                handle.job_id,
                handle.backend,
                self.backend.name,
            )
            return JobState.FAILED.value
        return self.backend.job_status(handle).state.value

    def is_job_active(self, status: str) -> bool:
        from tricloud.cluster import JobState

        return JobState(status).active

    def is_job_succeeded(self, status: str) -> bool:
        from tricloud.cluster import JobState

        return JobState(status) is JobState.SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> dict:
        """Wait for the job (defer to the triggerer when possible); returns its result.

        Returns the result, not None: ``ResumableJobMixin`` returns this method's value on the
        re-attach path (and calls :meth:`get_job_result` on the others), so a re-attached task still
        hands its metrics to XCom.
        """
        handle = self._as_handle(external_id)
        self._handle = handle
        if self.deferrable and (trigger := self.backend.trigger(handle, self.poll_interval)) is not None:
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"handle": handle.to_json()})
        self.log.info(
            "Waiting for job %s (%s backend, no trigger or not deferrable: polling every %.0fs)",
            handle.key,
            handle.backend,
            self.poll_interval,
        )
        offset = 0
        while True:
            status = self.backend.job_status(handle)
            lines, offset = self.backend.log_lines(handle, offset)
            for line in lines:
                self.log.info("%s", line)
            if status.state.terminal:
                break
            self.backend.wait(handle, self.poll_interval)  # the local backend returns once the job ended
        lines, offset = self.backend.log_lines(handle, offset)
        for line in lines:
            self.log.info("%s", line)
        return self._finish(handle, status, context)

    def get_job_result(self, external_id: Any, context: Context) -> dict:
        if self._result is not None:
            return self._result
        handle = self._as_handle(external_id)
        return self._finish(handle, self.backend.job_status(handle), context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, handle: Any = None) -> dict:
        """After the trigger fired: the backend's status is authoritative (not the event), then the result."""
        handle = self._as_handle(handle or (event or {}).get("handle"))
        self._handle = handle
        self.log.info("Trigger fired for job %s: %s", handle.key, event)
        return self._finish(handle, self.backend.job_status(handle), context)

    def on_kill(self) -> None:
        if self._handle is not None:
            self.log.info("Task killed: cancelling job %s", self._handle.key)
            self.backend.cancel(self._handle)

    # -- OpenLineage (called by the provider's listener only when lineage is on) -----------------
    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Nothing yet: which files a job reads and writes is known once it reported them."""
        from tricloud.lineage import lineage

        return lineage()

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage:
        """The job's ``input``, ``output`` and ``rejects``, as its metrics name them (tricloud.lineage)."""
        from tricloud.lineage import spark_job_lineage

        return spark_job_lineage(self._result)

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage:
        """Whatever the job reported before it failed (usually nothing: a failed job writes no metrics)."""
        return self.get_openlineage_facets_on_complete(task_instance)

    # -- helpers ----------------------------------------------------------------------------------
    def _as_handle(self, value: Any) -> JobHandle:
        from tricloud.cluster import JobHandle

        return value if isinstance(value, JobHandle) else JobHandle.from_json(value)

    def _finish(self, handle: JobHandle, status: JobStatus, context: Context | None = None) -> dict:
        """The job's metrics when it succeeded; else raise with the driver's error and the log's location.

        On success the stored handle is deleted from ``task_state_store``: the next try of this task
        (a user *clearing* the run to re-process the hour) must run the job again, not return this
        result (Airflow keeps a task's state store across clears; ``[state_store] clear_on_success``
        is off by default).
        """
        from tricloud.cluster import JobFailed, JobState

        self.console_links = self.backend.console_links(handle)
        if status.state is not JobState.SUCCEEDED:
            if status.state.active:
                raise AirflowException(f"job {handle.key} is still {status.raw} after its trigger fired")
            error = self.backend.driver_error(handle, status)
            self.log.error("Job %s ended %s:\n%s", handle.key, status.raw, error)
            if lease_lost(status.message, status.exit_code):
                raise AirflowFailException(
                    f"the job lost the hour's lease (exit code {LEASE_LOST_EXIT}, LeaseLostError in the log "
                    f"above names the holder): not retried, nothing more was published. {error}"
                )
            failure = JobFailed(error, handle=handle, status=status, driver_log=self.backend.driver_log(handle))
            if data_error(f"{status.message or ''}\n{error}", status.exit_code):  # a known exit code wins
                raise SparkJobDataError(
                    f"Spark job {handle.key} failed on its input or a setting (exit code {DATA_ERROR_EXIT}): "
                    f"not retried, nothing was published; fix what the error names, then clear the task. {error}"
                ) from failure
            raise AirflowException(f"Spark job {handle.key} ended {status.raw}: {error}") from failure
        result: dict[str, Any] = {"application": self.application}
        metrics = self.backend.read_result(handle)
        if metrics:
            result.update(metrics)
        else:
            self.log.warning("The job wrote no metrics to %s", handle.result_uri)
        self.spark_application_id = result.get("application_id")
        self._result = result
        store = (context or {}).get("task_state_store")
        if store is not None:
            store.delete(self.external_id_key)
        self.log.info("Spark job %s done: %s", handle.key, result)
        return result
