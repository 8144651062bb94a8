"""Triggers for deferrable Spark jobs: the provider's own, plus cancel-on-kill where it has none.

The amazon provider's ``EmrStepSensorTrigger`` waits for a step but does nothing when the user kills
the deferred task (mark failed, clear): the step keeps running on the cluster, and costs money, while
Airflow believes the task is gone. :class:`EmrStepTrigger` adds ``on_kill`` (Airflow 3.3's
``BaseTrigger.on_kill``, called by the triggerer only on a user action, never on a triggerer restart or
redistribution) and cancels the step, as the provider's ``EmrServerlessStartJobTrigger`` does for
Serverless job runs. Everything else (polling, serialisation, the events) is the provider's.

The google provider's ``DataprocBatchTrigger`` likewise waits for a Dataproc Serverless batch and has no
``on_kill``: :class:`DataprocBatchTrigger` here cancels the batch (its ``CancelOperation``) on a kill,
through the provider's synchronous ``DataprocHook`` as its ``DataprocSubmitTrigger`` does for jobs.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger
from airflow.providers.google.cloud.triggers.dataproc import DataprocBatchTrigger as ProviderBatchTrigger
from asgiref.sync import sync_to_async

from tricloud.cluster import gcp

#: Step states after which there is nothing to cancel.
STEP_TERMINAL_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"})


class EmrStepTrigger(EmrStepSensorTrigger):
    """``EmrStepSensorTrigger`` whose ``on_kill`` cancels the step (``CancelSteps``, ``SEND_INTERRUPT``).

    Same parameters as the provider's trigger. A step that already ended is left alone.
    """

    def _cancel_step(self) -> None:
        client = self.hook().conn
        cluster_id = self.serialized_fields["job_flow_id"]
        step_id = self.serialized_fields["step_id"]
        state = client.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]["State"]
        if state in STEP_TERMINAL_STATES:
            self.log.info("Step %s of %s already ended (%s): nothing to cancel", step_id, cluster_id, state)
            return
        client.cancel_steps(ClusterId=cluster_id, StepIds=[step_id], StepCancellationOption="SEND_INTERRUPT")
        self.log.info("Cancelled EMR step %s on cluster %s (task killed)", step_id, cluster_id)

    async def on_kill(self) -> None:
        """Cancel the step when a user kills the deferred task (Airflow 3.3+)."""
        await sync_to_async(self._cancel_step)()


class DataprocBatchTrigger(ProviderBatchTrigger):
    """The provider's ``DataprocBatchTrigger`` whose ``on_kill`` cancels the batch (:func:`gcp.cancel_batch`).

    Same parameters as the provider's trigger, plus ``api_endpoint`` for the cancel's synchronous hook
    (:class:`gcp.DataprocEndpointHook`; None: Google's endpoint). A batch that already ended is left alone.
    """

    def __init__(self, batch_id: str, api_endpoint: str | None = None, **kwargs: Any) -> None:
        super().__init__(batch_id=batch_id, **kwargs)
        self.api_endpoint = api_endpoint

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """This class and the provider's arguments, plus ``api_endpoint``."""
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "api_endpoint": self.api_endpoint}

    def get_sync_hook(self) -> gcp.DataprocEndpointHook:
        return gcp.DataprocEndpointHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain, api_endpoint=self.api_endpoint
        )

    def _cancel_batch(self) -> None:
        if gcp.cancel_batch(self.get_sync_hook(), self.project_id, self.region, self.batch_id):
            self.log.info("Cancelled Dataproc Serverless batch %s (task killed)", self.batch_id)
        else:
            self.log.info("Dataproc Serverless batch %s already ended: nothing to cancel", self.batch_id)

    async def on_kill(self) -> None:
        """Cancel the batch when a user kills the deferred task (Airflow 3.3+)."""
        await sync_to_async(self._cancel_batch)()
