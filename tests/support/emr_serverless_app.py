"""A test-side EMR Serverless "application": runs the job runs the in-process moto holds, here, and ends them.

moto keeps EMR Serverless's control plane (applications, job runs, tags) but never runs a job; moto
5.2.5 even creates every job run already ``SUCCESS`` (``moto.emrserverless.models.JOB_STATUS``). While
this runner is entered it sets that moto constant to ``SUBMITTED``, the state AWS gives a new run, and
restores it on exit: that configures the emulator, not tricloud's code. The thread then plays the
application's part, explicitly and visibly, with the code it shares with the emulated EMR cluster
(:class:`tests.support.emr_cluster.LocalSparkRunner`): for each new job run it builds the command line
``spark-submit <spark-defaults as --conf> <sparkSubmitParameters> <entryPoint> <entryPointArguments>`` from
the run's ``configurationOverrides`` and ``jobDriver.sparkSubmit``, fetches the staged code from S3, passes ``spark.emr-serverless.driverEnv.*`` as the
driver's environment, and runs it here with ``TRICLOUD_OBJECT_STORE_IO=staged`` (no EMRFS on this machine).

The run moves SUBMITTED → RUNNING → SUCCESS / FAILED in moto's ``JobRun`` objects (``stateDetails`` says the
exit code on failure); a run cancelled at the endpoint (CancelJobRun) is killed. The driver's output lands
gzipped where EMR Serverless ships it and the backend reads it:
``<logUri>/applications/<app>/jobs/<run>/SPARK_DRIVER/stderr.gz`` (``logUri`` from the run's
``s3MonitoringConfiguration``). ``ran`` records every run, for the tests to count.
"""

from __future__ import annotations

import gzip
import logging

from tests.support.emr_cluster import LocalSparkRunner, StepRun

log = logging.getLogger(__name__)

#: The states of a job run not yet picked up (AWS: SUBMITTED → PENDING → SCHEDULED → RUNNING).
_WAITING = ("SUBMITTED", "PENDING", "SCHEDULED", "QUEUED")
#: What AWS names a new job run's state; moto 5.2.5 says SUCCESS.
AWS_NEW_RUN_STATE = "SUBMITTED"


class EmulatedEmrServerless(LocalSparkRunner):
    """Run moto's EMR Serverless job runs locally (see the module docstring); use as a context manager.

    Entering sets ``moto.emrserverless.models.JOB_STATUS`` to ``SUBMITTED`` (emulator configuration,
    restored on exit) and starts the thread.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("name", "emulated-emr-serverless")
        super().__init__(*args, **kwargs)
        self._moto_job_status: str | None = None

    def __enter__(self) -> EmulatedEmrServerless:
        from moto.emrserverless import models

        self._moto_job_status, models.JOB_STATUS = models.JOB_STATUS, AWS_NEW_RUN_STATE
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        from moto.emrserverless import models

        try:
            super().__exit__(*exc)
        finally:
            models.JOB_STATUS = self._moto_job_status

    def run(self) -> None:
        while not self._halt.is_set():
            for runs in list(self.aws.serverless().job_runs.values()):
                for job_run in list(runs):
                    if job_run.id not in self._seen and job_run.state in _WAITING:
                        self._seen.add(job_run.id)
                        self._run_job(job_run)
            self._halt.wait(self.poll)

    @staticmethod
    def command_line(job_run) -> list[str]:
        """``spark-submit`` as EMR Serverless composes it: the ``spark-defaults`` properties of the run's
        ``applicationConfiguration`` as ``--conf`` (values kept whole, whitespace and all), then its
        ``jobDriver.sparkSubmit`` (``sparkSubmitParameters`` split on whitespace, winning over the defaults)."""
        spark = (job_run.job_driver or {}).get("sparkSubmit") or {}
        defaults: list[str] = []
        for classification in (job_run.configuration_overrides or {}).get("applicationConfiguration") or []:
            if classification.get("classification") == "spark-defaults":
                for key, value in (classification.get("properties") or {}).items():
                    defaults += ["--conf", f"{key}={value}"]
        return [
            "spark-submit",
            *defaults,
            *str(spark.get("sparkSubmitParameters") or "").split(),
            spark.get("entryPoint", ""),
            *(spark.get("entryPointArguments") or []),
        ]

    def _run_job(self, job_run) -> None:
        app_id = job_run.application_id
        job_run.state = "RUNNING"
        log.warning("emulated EMR Serverless: job run %s (%s) on %s RUNNING", job_run.id, job_run.name, app_id)
        code, output = self.execute(
            self.command_line(job_run),
            self.workdir / job_run.id,
            lambda: job_run.state in ("CANCELLING", "CANCELLED"),
        )
        monitoring = (job_run.configuration_overrides or {}).get("monitoringConfiguration", {})
        log_uri = (monitoring.get("s3MonitoringConfiguration") or {}).get("logUri")
        if log_uri:
            where = f"{log_uri.rstrip('/')}/applications/{app_id}/jobs/{job_run.id}/SPARK_DRIVER/stderr.gz"
            self.aws.put_object(where, gzip.compress(output))
        if job_run.state not in ("CANCELLING", "CANCELLED"):
            job_run.state = "SUCCESS" if code == 0 else "FAILED"
            job_run.state_details = None if code == 0 else f"spark-submit exited {code}"
        self.ran.append(StepRun(app_id, job_run.id, job_run.name, code))
        log.warning("emulated EMR Serverless: job run %s %s (exit %s)", job_run.id, job_run.state, code)
