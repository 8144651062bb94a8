"""Triggers for deferrable Spark jobs: the provider's own, plus cancel-on-kill where it has none.

The amazon provider's ``EmrStepSensorTrigger`` waits for a step but does nothing when the user kills
the deferred task (mark failed, clear): the step keeps running on the cluster, and costs money, while
Airflow believes the task is gone. :class:`EmrStepTrigger` adds ``on_kill`` (Airflow 3.3's
``BaseTrigger.on_kill``, called by the triggerer only on a user action, never on a triggerer restart or
redistribution) and cancels the step, as the provider's ``EmrServerlessStartJobTrigger`` does for
Serverless job runs. Everything else (polling, serialisation, the events) is the provider's.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger
from asgiref.sync import sync_to_async

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
