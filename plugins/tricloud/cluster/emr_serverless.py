"""The ``emr-serverless`` backend: Spark jobs as EMR Serverless job runs, through ``EmrServerlessHook``.

Application: reuse the one application named ``TRICLOUD_EMR_SERVERLESS_APPLICATION_NAME`` that is not
terminated (two or more is an error listing their ids), else create one (type SPARK, the release
label, auto-start, auto-stop after ``TRICLOUD_EMR_SERVERLESS_IDLE_MINUTES`` idle, tricloud's tags). An
application this call created that does not become ready is deleted before the error is raised.
``stop`` stops and deletes only an application tagged as tricloud's and with no job of another run
still active.

Jobs: the application and ``include/`` (zipped) are staged under ``TRICLOUD_CODE_URI``; a job run has
``clientToken`` = ``name`` = the job key, ``entryPoint`` = the staged ``.py``, ``--py-files`` = the zip;
confs whose value holds whitespace (``extraJavaOptions``) go to the run's ``spark-defaults`` classification.
AWS makes ``StartJobRun`` idempotent on the client token; the backend also returns an active or
succeeded run of that name before asking (the token's window is limited, and moto ignores it). Logs go
to ``logUri`` of ``s3MonitoringConfiguration``: the driver's are under
``<logUri>/applications/<app>/jobs/<run>/SPARK_DRIVER/``.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tricloud.cluster import aws
from tricloud.cluster.aws_settings import EmrServerlessSettings, emr_serverless_settings
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
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
    from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger

#: Application states that are neither gone nor going.
LIVE_APP_STATES = ["CREATING", "CREATED", "STARTING", "STARTED", "STOPPING", "STOPPED"]
#: Job run ``state`` → ours.
RUN_STATES = {
    "SUBMITTED": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "SCHEDULED": JobState.PENDING,
    "QUEUED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCELLING": JobState.RUNNING,
    "SUCCESS": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}
ACTIVE_RUN_STATES = ["SUBMITTED", "PENDING", "SCHEDULED", "QUEUED", "RUNNING", "CANCELLING"]
#: Runs that make a resubmission with the same key a duplicate.
REUSABLE_RUN_STATES = [*ACTIVE_RUN_STATES, "SUCCESS"]
DRIVER_ENV = "spark.emr-serverless.driverEnv."


class EmrServerlessBackend(aws.AwsBackend):
    """EMR Serverless through ``EmrServerlessHook`` and ``S3Hook``. See the module docstring."""

    name = "emr-serverless"

    def __init__(self, settings: EmrServerlessSettings) -> None:
        self.settings = settings
        self._application_id: str | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> EmrServerlessBackend:
        """Settings from ``TRICLOUD_*`` variables, ``overrides`` winning (``aws_settings.emr_serverless_settings``).

        :raises ValueError: a setting missing or malformed, or an unknown override (the message names it).
        """
        return cls(emr_serverless_settings(overrides))

    # -- hooks ---------------------------------------------------------------------------------
    @cached_property
    def hook(self) -> EmrServerlessHook:
        from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

        return EmrServerlessHook(aws_conn_id=self.settings.aws_conn_id)

    # -- the application -----------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"emr-serverless://{self._application_id or self.settings.application_name}"

    @property
    def ui_url(self) -> str | None:
        return self._app_link(self._application_id) if self._application_id else None

    def _app_link(self, application_id: str) -> str:
        return f"{aws.CONSOLE}/emr/home?region={self.region}#/serverless-applications/{application_id}"

    def find_application(self) -> str | None:
        """The id of the one live application of this name, None when there is none.

        :raises RuntimeError: two or more live applications carry the name (their ids listed).
        """
        pages = self.hook.conn.get_paginator("list_applications").paginate(states=LIVE_APP_STATES)
        ids = sorted(a["id"] for p in pages for a in p["applications"] if a["name"] == self.settings.application_name)
        if len(ids) > 1:
            raise RuntimeError(
                f"{len(ids)} EMR Serverless applications are named {self.settings.application_name!r} "
                f"({', '.join(ids)}): delete the extra ones, or set TRICLOUD_EMR_SERVERLESS_APPLICATION_NAME "
                "to a name only one application has"
            )
        return ids[0] if ids else None

    def status(self) -> ClusterStatus:
        app_id = self._application_id or self.find_application()
        if not app_id:
            return ClusterStatus(alive=False, workers=0, active_apps=0)
        return ClusterStatus(alive=True, workers=0, active_apps=len(self._active_runs(app_id)))

    def _runs(self, app_id: str, states: list[str]) -> list[dict[str, Any]]:
        """Job runs of the application in ``states``, newest first (none: moto answers NotFound, AWS [])."""
        from botocore.exceptions import ClientError

        pages = self.hook.conn.get_paginator("list_job_runs").paginate(applicationId=app_id, states=states)
        try:
            return [r for p in pages for r in p["jobRuns"]]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise

    def _active_runs(self, app_id: str) -> list[str]:
        return [r["id"] for r in self._runs(app_id, ACTIVE_RUN_STATES)]

    def _info(self, app_id: str, started: bool) -> ClusterInfo:
        self._application_id = app_id
        return ClusterInfo(
            backend=self.name,
            master_url=f"emr-serverless://{app_id}",
            ui_url=self._app_link(app_id),
            started=started,
            workers=0,
            details={"application_name": self.settings.application_name, "region": self.region},
            cluster_id=app_id,
        )

    def start(self, timeout: float = 600.0) -> ClusterInfo:
        """Reuse the live application of this name or create one and wait until it is CREATED.

        :raises RuntimeError: two applications of this name, or the new one did not become ready (it is
            deleted first).
        :raises ValueError: ``LAKE_ROOT`` is a local path (before anything is created).
        """
        aws.require_object_store_lake(self.name)
        existing = self.find_application()
        if existing:
            self.hook.log.info("Reusing EMR Serverless application %s", existing)
            return self._info(existing, started=False)
        s = self.settings
        tags = s.tags | {aws.MANAGED_TAG: "true", aws.CREATED_BY_TAG: s.created_by}
        app_id = self.hook.conn.create_application(
            name=s.application_name,
            releaseLabel=s.release_label,
            type="SPARK",
            autoStartConfiguration={"enabled": True},
            autoStopConfiguration={"enabled": True, "idleTimeoutMinutes": s.idle_minutes},
            tags=tags,
        )["applicationId"]
        self.hook.log.info("Created EMR Serverless application %s (%s)", app_id, s.application_name)
        wait_or_tear_down(
            lambda: self._wait_ready(app_id, timeout),
            lambda: self._delete(app_id),
            lambda err, _: (
                f"EMR Serverless application {app_id} did not become ready within {timeout:.0f}s ({err}); "
                "it was deleted"
            ),
        )
        return self._info(app_id, started=True)

    def _wait_ready(self, app_id: str, timeout: float) -> None:
        """Poll until the application is CREATED or STARTED (moto creates it STARTED; AWS CREATED).

        The provider's ``serverless_app_created`` waiter accepts only CREATED, hence tenacity here.
        """
        from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

        def state() -> str:
            return self.hook.conn.get_application(applicationId=app_id)["application"]["state"]

        current = Retrying(
            retry=retry_if_result(lambda st: st in ("CREATING", "STARTING")),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(self.settings.poll_interval),
            retry_error_callback=lambda retry_state: retry_state.outcome.result(),  # the last state seen
        )(state)
        if current not in ("CREATED", "STARTED"):
            raise RuntimeError(f"application {app_id} is {current} (waited up to {timeout:.0f}s)")

    def _delete(self, app_id: str) -> None:
        state = self.hook.conn.get_application(applicationId=app_id)["application"]["state"]
        if state in ("STARTING", "STARTED"):
            self.hook.conn.stop_application(applicationId=app_id)
            self.hook.get_waiter("serverless_app_stopped").wait(
                applicationId=app_id,
                WaiterConfig={"Delay": max(1, round(self.settings.poll_interval)), "MaxAttempts": 60},
            )
        if state != "TERMINATED":
            self.hook.conn.delete_application(applicationId=app_id)
            self.hook.log.info("Deleted EMR Serverless application %s", app_id)

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Stop and delete application ``cluster_id`` if tricloud created it and no job is active on it.

        Returns False (nothing done) for an unknown or terminated application, one without the
        ``tricloud:managed`` tag, or one where another run's job is still active (auto-stop ends it).
        """
        if not cluster_id:
            return False
        from botocore.exceptions import ClientError

        try:
            app = self.hook.conn.get_application(applicationId=cluster_id)["application"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        if app["state"] == "TERMINATED":
            return False
        if (app.get("tags") or {}).get(aws.MANAGED_TAG) != "true":
            self.hook.log.info("Application %s is not tagged %s=true: left as it is", cluster_id, aws.MANAGED_TAG)
            return False
        active = self._active_runs(cluster_id)
        if active:
            self.hook.log.info(
                "Application %s still runs %d job(s) of other runs: left to its auto-stop", cluster_id, len(active)
            )
            return False
        self._delete(cluster_id)
        return True

    # -- the jobs ------------------------------------------------------------------------------
    def _find_run(self, app_id: str, key: str) -> str | None:
        ids = [r["id"] for r in self._runs(app_id, REUSABLE_RUN_STATES) if r.get("name") == key]
        return ids[0] if ids else None

    @staticmethod
    def _options(job: SparkJob) -> tuple[list[str], dict[str, str]]:
        """``job``'s spark-submit options split in two: those ``sparkSubmitParameters`` can carry, and the
        confs whose value holds whitespace (e.g. ``extraJavaOptions``), which go to ``spark-defaults``.

        ``sparkSubmitParameters`` is one string split on whitespace by EMR Serverless; a ``spark-defaults``
        property of ``applicationConfiguration`` is passed as it is (AWS, "Using Spark configurations
        when you run EMR Serverless jobs").

        :raises ValueError: a non-conf option's value contains whitespace.
        """
        flat, defaults = aws.spark_submit_options(job, DRIVER_ENV), {}
        options: list[str] = []
        for flag, value in zip(flat[::2], flat[1::2], strict=True):
            if not any(c.isspace() for c in value):
                options += [flag, value]
            elif flag == "--conf":
                key, _, val = value.partition("=")
                defaults[key] = val
            else:
                raise ValueError(f"EMR Serverless cannot pass {flag} {value!r}: it contains whitespace")
        return options, defaults

    def job_driver(self, job: SparkJob, staged: aws.StagedCode) -> dict[str, Any]:
        """The ``jobDriver.sparkSubmit`` of ``job`` (confs holding whitespace are in :meth:`spark_defaults`).

        :raises ValueError: a non-conf option's value contains whitespace.
        """
        options = ["--py-files", staged.py_files, *self._options(job)[0]]
        return {
            "sparkSubmit": {
                "entryPoint": staged.application,
                "entryPointArguments": job.submitted_args,
                "sparkSubmitParameters": " ".join(["--name", job.name.replace(" ", "_"), *options]),
            }
        }

    def spark_defaults(self, job: SparkJob) -> dict[str, str]:
        """The confs of ``job`` whose value holds whitespace, for the run's ``spark-defaults`` classification."""
        return self._options(job)[1]

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the code and start the run (client token = job key); an existing run of that key is returned.

        :raises RuntimeError: no application id given and no live application of this name.
        """
        app_id = cluster_id or self._application_id or self.find_application()
        if not app_id:
            raise RuntimeError(
                f"no EMR Serverless application named {self.settings.application_name!r}: start one first "
                "(StartClusterOperator) or pass its id"
            )
        self._application_id = app_id
        run_id = self._find_run(app_id, job.key)
        if run_id:
            self.hook.log.info("Job %s is already run %s on %s: not started again", job.key, run_id, app_id)
            return self._handle(job, app_id, run_id, {})
        aws.require_object_store_lake(self.name, job)
        staged = aws.stage_code(self.s3, self.settings.code_uri, job)
        run_id = self.hook.conn.start_job_run(
            applicationId=app_id,
            clientToken=job.key,
            name=job.key,
            executionRoleArn=self.settings.execution_role_arn,
            jobDriver=self.job_driver(job, staged),
            configurationOverrides=self._overrides(job),
            tags={aws.MANAGED_TAG: "true", aws.CREATED_BY_TAG: self.settings.created_by},
        )["jobRunId"]
        self.hook.log.info("Started EMR Serverless job run %s on %s (%s)", run_id, app_id, job.key)
        return self._handle(job, app_id, run_id, {"application": staged.application, "py_files": staged.py_files})

    def _overrides(self, job: SparkJob) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": self.settings.log_uri + "/"}}
        }
        defaults = self.spark_defaults(job)
        if defaults:
            overrides["applicationConfiguration"] = [{"classification": "spark-defaults", "properties": defaults}]
        return overrides

    def _run(self, handle: JobHandle) -> dict[str, Any]:
        return self.hook.conn.get_job_run(applicationId=handle.cluster_id, jobRunId=handle.job_id)["jobRun"]

    def job_status(self, handle: JobHandle) -> JobStatus:
        run = self._run(handle)
        raw = run["state"]
        return JobStatus(state=RUN_STATES.get(raw, JobState.RUNNING), raw=raw, message=run.get("stateDetails") or None)

    def cancel(self, handle: JobHandle) -> None:
        if self.job_status(handle).state.terminal:
            return
        self.hook.conn.cancel_job_run(applicationId=handle.cluster_id, jobRunId=handle.job_id)
        self.hook.log.info("Cancelled job run %s on %s", handle.job_id, handle.cluster_id)

    def driver_log(self, handle: JobHandle) -> str | None:
        """``<logUri>/applications/<app>/jobs/<run>/SPARK_DRIVER/stderr.gz`` from the run's monitoring config."""
        overrides = self._run(handle).get("configurationOverrides") or {}
        log_uri = aws.normalise_s3(
            overrides.get("monitoringConfiguration", {}).get("s3MonitoringConfiguration", {}).get("logUri")
        )
        if not log_uri:
            return None
        return f"{log_uri}/applications/{handle.cluster_id}/jobs/{handle.job_id}/SPARK_DRIVER/stderr.gz"

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """EMR Serverless's ``stateDetails``, then the tail of the driver's stderr."""
        head = status.message or f"job run {handle.job_id} ended {status.raw}"
        return self._error_with_log_tail(head, handle, "no logUri on the job run")

    def trigger(self, handle: JobHandle, poll_interval: float) -> EmrServerlessStartJobTrigger:
        """The provider's job-run trigger with ``cancel_on_kill=True``."""
        from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger

        delay = max(1, round(poll_interval))
        return EmrServerlessStartJobTrigger(
            application_id=handle.cluster_id,
            job_id=handle.job_id,
            waiter_delay=delay,
            waiter_max_attempts=math.ceil(24 * 3600 / delay),  # Serverless stops a run after 12 h by default
            aws_conn_id=self.settings.aws_conn_id,
            cancel_on_kill=True,
            region_name=self.region,
        )

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        """The application's console page, the run's log folder and its driver stderr in the S3 console."""
        app_id = (handle.cluster_id if handle else None) or self._application_id
        if not app_id:
            return {}
        links = {"cluster": self._app_link(app_id)}
        return links | (self._log_links(self.driver_log(handle), 2) if handle else {})
