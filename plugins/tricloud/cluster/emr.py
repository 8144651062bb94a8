"""The ``emr`` backend: Spark jobs as steps on an EMR on EC2 cluster, through the amazon provider's hooks.

Cluster: reuse the one active cluster named ``TRICLOUD_EMR_CLUSTER_NAME`` (two or more is an error
listing their ids), else create one with ``EmrHook.create_job_flow`` (the ``emr_default``
connection's extra gives the RunJobFlow defaults: instances, roles, subnet, …), an idle
auto-termination policy and tricloud's tags. A cluster this call created that does not come up is
terminated before the error is raised. ``stop`` terminates only a cluster tagged as tricloud's;
"already terminated" is success.

Jobs: the application and ``include/`` (zipped) are staged under ``TRICLOUD_CODE_URI``; a job is a
``command-runner.jar`` step running ``spark-submit --deploy-mode cluster --py-files <zip>``,
``ActionOnFailure=CONTINUE`` (a failed job must not take a shared cluster down). The step's name is
the job key: a step with that name that is pending, running or completed is returned instead of adding
a second one. Driver logs: the step's ``stderr.gz`` under the cluster's ``LogUri``.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tricloud.cluster import aws
from tricloud.cluster.aws_settings import EmrSettings, emr_settings
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
    from airflow.providers.amazon.aws.hooks.emr import EmrHook

    from tricloud.cluster.triggers import EmrStepTrigger

#: Cluster states in which a cluster can take steps now or soon.
ACTIVE_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
GONE_STATES = {"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"}
#: EMR ``StepState`` → ours. ``CANCEL_PENDING`` is still active: the step may yet finish.
STEP_STATES = {
    "PENDING": JobState.PENDING,
    "CANCEL_PENDING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "CANCELLED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "INTERRUPTED": JobState.FAILED,
}
#: States of a step that make a resubmission with the same key a duplicate.
REUSABLE_STEP_STATES = ["PENDING", "CANCEL_PENDING", "RUNNING", "COMPLETED"]


class EmrBackend(aws.AwsBackend):
    """EMR on EC2 through ``EmrHook`` and ``S3Hook``. See the module docstring for the rules."""

    name = "emr"

    def __init__(self, settings: EmrSettings) -> None:
        self.settings = settings
        self._cluster_id: str | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> EmrBackend:
        """Settings from ``TRICLOUD_*`` variables, ``overrides`` winning (``aws_settings.emr_settings``).

        :raises ValueError: a setting missing or malformed, or an unknown override (the message names it).
        """
        return cls(emr_settings(overrides))

    # -- hooks ---------------------------------------------------------------------------------
    @cached_property
    def hook(self) -> EmrHook:
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        return EmrHook(aws_conn_id=self.settings.aws_conn_id, emr_conn_id=self.settings.emr_conn_id)

    # -- the cluster ---------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"emr://{self._cluster_id or self.settings.cluster_name}"

    @property
    def ui_url(self) -> str | None:
        return self._cluster_link(self._cluster_id) if self._cluster_id else None

    def _cluster_link(self, cluster_id: str) -> str:
        # The provider's EmrClusterLink format.
        return f"{aws.CONSOLE}/emr/home?region={self.region}#/clusterDetails/{cluster_id}"

    def find_cluster(self) -> str | None:
        """The id of the one active cluster named ``cluster_name``, None when there is none.

        :raises RuntimeError: two or more active clusters carry the name (their ids listed).
        """
        from airflow.providers.common.compat.sdk import AirflowException

        try:
            return self.hook.get_cluster_id_by_name(self.settings.cluster_name, ACTIVE_STATES)
        except AirflowException as err:
            if "More than one" not in str(err):
                raise
        pages = self.hook.conn.get_paginator("list_clusters").paginate(ClusterStates=ACTIVE_STATES)
        ids = sorted(c["Id"] for p in pages for c in p["Clusters"] if c["Name"] == self.settings.cluster_name)
        raise RuntimeError(
            f"{len(ids)} active EMR clusters are named {self.settings.cluster_name!r} ({', '.join(ids)}): "
            "terminate the extra ones, or set TRICLOUD_EMR_CLUSTER_NAME to a name only one cluster has"
        )

    def status(self) -> ClusterStatus:
        cluster_id = self._cluster_id or self.find_cluster()
        if not cluster_id:
            return ClusterStatus(alive=False, workers=0, active_apps=0)
        cluster = self.hook.conn.describe_cluster(ClusterId=cluster_id)["Cluster"]
        if cluster["Status"]["State"] in GONE_STATES:
            return ClusterStatus(alive=False, workers=0, active_apps=0)
        groups = self.hook.conn.list_instance_groups(ClusterId=cluster_id).get("InstanceGroups", [])
        workers = sum(g.get("RunningInstanceCount", 0) for g in groups if g.get("InstanceGroupType") != "MASTER")
        steps = self.hook.conn.list_steps(ClusterId=cluster_id, StepStates=["PENDING", "RUNNING"])["Steps"]
        return ClusterStatus(alive=True, workers=workers, active_apps=len(steps))

    def _info(self, cluster_id: str, started: bool) -> ClusterInfo:
        self._cluster_id = cluster_id
        return ClusterInfo(
            backend=self.name,
            master_url=f"emr://{cluster_id}",
            ui_url=self._cluster_link(cluster_id),
            started=started,
            workers=self.settings.workers,
            details={"cluster_name": self.settings.cluster_name, "region": self.region},
            cluster_id=cluster_id,
        )

    def job_flow_overrides(self) -> dict[str, Any]:
        """RunJobFlow arguments tricloud sets over the ``emr_conn_id`` extra (nested keys merged)."""
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        s = self.settings
        try:
            extra = self.hook.get_connection(s.emr_conn_id).extra_dejson if s.emr_conn_id else {}
        except AirflowNotFoundException:
            extra = {}
        instances = extra.get("Instances") or {
            "InstanceGroups": [
                {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": s.instance_type, "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "InstanceType": s.instance_type, "InstanceCount": s.workers},
            ],
        }
        tags = {t["Key"]: t["Value"] for t in extra.get("Tags", [])}
        tags |= s.tags | {aws.MANAGED_TAG: "true", aws.CREATED_BY_TAG: s.created_by, "tricloud:cluster": s.cluster_name}
        applications = extra.get("Applications") or [{"Name": "Spark"}]
        if not any(a.get("Name", "").lower() == "spark" for a in applications):
            applications = [*applications, {"Name": "Spark"}]
        return {
            "Name": s.cluster_name,
            "ReleaseLabel": extra.get("ReleaseLabel") or s.release_label,
            "LogUri": s.log_uri + "/",
            "Applications": applications,
            # Steps come and go: the cluster must outlive them; the idle policy ends it instead.
            "Instances": {**instances, "KeepJobFlowAliveWhenNoSteps": True},
            "AutoTerminationPolicy": {"IdleTimeout": s.idle_timeout},
            "JobFlowRole": extra.get("JobFlowRole") or "EMR_EC2_DefaultRole",
            "ServiceRole": extra.get("ServiceRole") or "EMR_DefaultRole",
            "VisibleToAllUsers": True,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }

    def start(self, timeout: float = 1200.0) -> ClusterInfo:
        """Reuse the active cluster of this name or create one; wait until it takes steps.

        :param timeout: seconds to wait for ``WAITING``/``RUNNING``; at least ``start_timeout``
            (EMR takes ~5–15 minutes, the operators' default is sized for a local cluster).
        :raises RuntimeError: two clusters of this name, or the cluster did not come up (a cluster this
            call created is terminated first).
        :raises ValueError: ``LAKE_ROOT`` is a local path (before anything is created).
        """
        aws.require_object_store_lake(self.name)
        timeout = max(timeout, self.settings.start_timeout)
        existing = self.find_cluster()
        if existing:
            self.log_info("Reusing EMR cluster %s (%s)", existing, self.settings.cluster_name)
            self._wait_running(existing, timeout)
            return self._info(existing, started=False)
        response = self.hook.create_job_flow(self.job_flow_overrides())
        cluster_id = response["JobFlowId"]
        self.log_info("Created EMR cluster %s (%s)", cluster_id, self.settings.cluster_name)
        wait_or_tear_down(
            lambda: self._wait_running(cluster_id, timeout),
            lambda: self._terminate(cluster_id),
            lambda err, _: (
                f"EMR cluster {cluster_id} did not start within {timeout:.0f}s ({err}); it was terminated. "
                "See its state change reason in the EMR console"
            ),
        )
        return self._info(cluster_id, started=True)

    def _wait_running(self, cluster_id: str, timeout: float) -> None:
        delay = max(1, round(self.settings.poll_interval))
        self.hook.conn.get_waiter("cluster_running").wait(
            ClusterId=cluster_id, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))}
        )

    def _terminate(self, cluster_id: str) -> None:
        self.hook.conn.terminate_job_flows(JobFlowIds=[cluster_id])
        self.log_info("Terminated EMR cluster %s", cluster_id)

    def stop(self, timeout: float = 30.0, cluster_id: str | None = None) -> bool:
        """Terminate ``cluster_id`` if tricloud created it; False when there is nothing to do.

        A cluster without the ``tricloud:managed`` tag is never terminated (someone else's).
        """
        cluster_id = cluster_id or None
        if not cluster_id:
            return False
        from botocore.exceptions import ClientError

        try:
            cluster = self.hook.conn.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("InvalidRequestException", "ResourceNotFoundException"):
                return False  # gone long ago
            raise
        if cluster["Status"]["State"] in GONE_STATES:
            return False
        tags = {t["Key"]: t["Value"] for t in cluster.get("Tags", [])}
        if tags.get(aws.MANAGED_TAG) != "true":
            self.log_info("EMR cluster %s is not tagged %s=true: left running", cluster_id, aws.MANAGED_TAG)
            return False
        active = self.hook.conn.list_steps(ClusterId=cluster_id, StepStates=["PENDING", "RUNNING", "CANCEL_PENDING"])
        if active["Steps"]:
            # Another run reused the cluster and its job still runs: the idle policy ends the cluster later.
            self.log_info(
                "EMR cluster %s still runs %d step(s): left to its idle timeout", cluster_id, len(active["Steps"])
            )
            return False
        self._terminate(cluster_id)
        return True

    # -- the jobs ------------------------------------------------------------------------------
    def _find_step(self, cluster_id: str, key: str) -> str | None:
        pages = self.hook.conn.get_paginator("list_steps").paginate(
            ClusterId=cluster_id, StepStates=REUSABLE_STEP_STATES
        )
        ids = [s["Id"] for p in pages for s in p["Steps"] if s["Name"] == key]
        return ids[0] if ids else None  # newest first

    def step_definition(self, job: SparkJob, staged: aws.StagedCode) -> dict[str, Any]:
        """The ``command-runner.jar`` step running ``job`` in cluster deploy mode."""
        args = [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--name",
            job.name,
            "--py-files",
            staged.py_files,
            *aws.spark_submit_options(job),
            staged.application,
            *job.submitted_args,
        ]
        return {
            "Name": job.key,
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
        }

    def submit(self, job: SparkJob, cluster_id: str | None = None) -> JobHandle:
        """Stage the code and add the step; a step named ``job.key`` already there is returned instead.

        :raises RuntimeError: no cluster id given and no active cluster of this name.
        """
        cluster_id = cluster_id or self._cluster_id or self.find_cluster()
        if not cluster_id:
            raise RuntimeError(
                f"no active EMR cluster named {self.settings.cluster_name!r}: start one first "
                "(StartClusterOperator) or pass its id"
            )
        self._cluster_id = cluster_id
        step_id = self._find_step(cluster_id, job.key)
        if step_id:
            self.log_info("Job %s is already step %s on %s: not submitted again", job.key, step_id, cluster_id)
            return self._handle(job, cluster_id, step_id, {})
        aws.require_object_store_lake(self.name, job)
        staged = aws.stage_code(self.s3, self.settings.code_uri, job)
        (step_id,) = self.hook.add_job_flow_steps(cluster_id, [self.step_definition(job, staged)])
        return self._handle(job, cluster_id, step_id, {"application": staged.application, "py_files": staged.py_files})

    def _step(self, handle: JobHandle) -> dict[str, Any]:
        return self.hook.conn.describe_step(ClusterId=handle.cluster_id, StepId=handle.job_id)["Step"]

    def job_status(self, handle: JobHandle) -> JobStatus:
        status = self._step(handle)["Status"]
        raw = status["State"]
        failure = status.get("FailureDetails") or {}
        parts = [failure.get("Reason"), failure.get("Message")]
        if failure.get("LogFile"):
            parts.append(f"log: {failure['LogFile']}")
        message = "; ".join(p for p in parts if p) or (status.get("StateChangeReason") or {}).get("Message")
        return JobStatus(state=STEP_STATES.get(raw, JobState.RUNNING), raw=raw, message=message or None)

    def cancel(self, handle: JobHandle) -> None:
        state = self.job_status(handle).state
        if state.terminal:
            return
        self.hook.conn.cancel_steps(
            ClusterId=handle.cluster_id, StepIds=[handle.job_id], StepCancellationOption="SEND_INTERRUPT"
        )
        self.log_info("Cancelled step %s on %s", handle.job_id, handle.cluster_id)

    def driver_log(self, handle: JobHandle) -> str | None:
        """``FailureDetails.LogFile`` when EMR names one, else ``<LogUri>/<cluster>/steps/<step>/stderr.gz``.

        In cluster deploy mode the step's stderr is spark-submit's (it names the YARN application and
        the driver's final error); the driver's own stdout/stderr are under ``<LogUri>/<cluster>/containers/``.
        """
        failure = self._step(handle)["Status"].get("FailureDetails") or {}
        if failure.get("LogFile"):
            return aws.normalise_s3(failure["LogFile"])
        log_uri = aws.normalise_s3(
            self.hook.conn.describe_cluster(ClusterId=handle.cluster_id)["Cluster"].get("LogUri")
        )
        return f"{log_uri}/{handle.cluster_id}/steps/{handle.job_id}/stderr.gz" if log_uri else None

    def driver_error(self, handle: JobHandle, status: JobStatus) -> str:
        """EMR's failure reason, then the tail of the driver log (EMR writes logs ~5 minutes late)."""
        head = status.message or f"step {handle.job_id} ended {status.raw}"
        return self._error_with_log_tail(head, handle, "no LogUri on the cluster")

    def trigger(self, handle: JobHandle, poll_interval: float) -> EmrStepTrigger:
        """The provider's step trigger, with cancel-on-kill (:class:`tricloud.cluster.triggers.EmrStepTrigger`)."""
        from tricloud.cluster.triggers import EmrStepTrigger

        delay = max(1, round(poll_interval))
        return EmrStepTrigger(
            job_flow_id=handle.cluster_id,
            step_id=handle.job_id,
            waiter_delay=delay,
            waiter_max_attempts=math.ceil(7 * 24 * 3600 / delay),  # EMR's own step limit is days
            aws_conn_id=self.settings.aws_conn_id,
            region_name=self.region,
        )

    def console_links(self, handle: JobHandle | None) -> dict[str, str]:
        """The cluster's console page, the step's log folder and its stderr in the S3 console."""
        cluster_id = (handle.cluster_id if handle else None) or self._cluster_id
        if not cluster_id:
            return {}
        links = {"cluster": self._cluster_link(cluster_id)}
        return links | (self._log_links(self.driver_log(handle), 1) if handle else {})

    def log_info(self, msg: str, *args: Any) -> None:
        self.hook.log.info(msg, *args)
