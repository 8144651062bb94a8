"""A test-side Dataproc: runs the PySpark jobs and batches the Dataproc fake holds, on this machine, and ends them.

tests/support/dataproc_fake.py keeps Dataproc's control plane (clusters, jobs, batches, operations) and
never runs anything. This thread plays the machines' part, visibly, as tests/support/emr_cluster.py does
for EMR: for each new job (``pysparkJob``) or batch (``pysparkBatch``) it builds the spark-submit command
line Dataproc would run from the request (main file, ``--py-files``, args, properties as ``--conf``; the
driver-environment properties ``spark.yarn.appMasterEnv.*`` / ``spark.dataproc.driverEnv.*`` become the
driver's environment), fetches the staged code from the GCS emulator, runs it with ``--master local[2]``,
writes spark-submit's output where Dataproc keeps the driver output (``driverOutputResourceUri`` /
``runtimeInfo.outputUri`` + ``.000000000``), and ends the job at the fake (DONE / ERROR; batches SUCCEEDED /
FAILED). A job cancelled at the endpoint is killed.

**The one visible difference from Dataproc**: this machine's Spark has no GCS connector, so the driver gets
``TRICLOUD_OBJECT_STORE_IO=staged`` (include/jobs/staged_io.py) and ``STORAGE_EMULATOR_HOST``; on Dataproc
the same job reads and writes ``gs://`` through the connector.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tests.support.dataproc_fake import FakeDataproc
from tests.support.emr_cluster import LocalSparkRunner, StepRun

log = logging.getLogger(__name__)

_ACTIVE = ("PENDING", "RUNNING")
#: Properties that describe YARN's cluster mode, which ``local[2]`` cannot take.
_YARN_ONLY = ("spark.submit.deployMode",)


def spark_submit_args(spec: dict, properties: dict) -> list[str]:
    """The cluster-side ``spark-submit`` argv of a ``pysparkJob`` / ``pysparkBatch`` (proto3 JSON names)."""
    args = ["spark-submit"]
    for name, value in sorted(properties.items()):
        if name not in _YARN_ONLY:
            args += ["--conf", f"{name}={value}"]
    if spec.get("pythonFileUris"):
        args += ["--py-files", ",".join(spec["pythonFileUris"])]
    return [*args, spec["mainPythonFileUri"], *spec.get("args", [])]


class EmulatedDataproc(LocalSparkRunner):
    """Run the fake's jobs and batches locally (see the module docstring); use as a context manager.

    :param fake: the running Dataproc fake.
    :param gcs: a ``GCSHook`` on the emulator that holds the staged code and receives the driver output.
    :param workdir: a directory of the test's for staged code and the drivers' working directories.
    """

    def __init__(self, fake: FakeDataproc, gcs, workdir: Path, poll: float = 0.2) -> None:
        super().__init__(None, workdir, poll, name="emulated-dataproc")
        self.fake, self.gcs = fake, gcs

    def _fetch(self, uri: str, into: Path) -> str:
        bucket, _, key = uri[len("gs://") :].partition("/")
        local = into / key.rsplit("/", 1)[-1]
        local.write_bytes(self.gcs.download(bucket, key))
        return str(local)

    def store_env(self) -> dict[str, str]:
        """The driver's standard client settings for GCS: the emulator (anonymous)."""
        return {"STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}

    def run(self) -> None:
        while not self._halt.is_set():
            with self.fake.lock:
                jobs = [(j["reference"]["jobId"], j) for j in self.fake.jobs.values()]
                batches = [(b["name"].rsplit("/", 1)[-1], b) for b in self.fake.batches.values()]
            for job_id, job in jobs:
                if job_id not in self._seen and job["status"]["state"] in _ACTIVE:
                    self._seen.add(job_id)
                    spec = job["pysparkJob"]
                    self._run(job_id, spec, spec.get("properties", {}), job["driverOutputResourceUri"], False)
            for batch_id, batch in batches:
                if batch_id not in self._seen and batch["state"] in _ACTIVE:
                    self._seen.add(batch_id)
                    props = batch.get("runtimeConfig", {}).get("properties", {})
                    self._run(batch_id, batch["pysparkBatch"], props, batch["runtimeInfo"]["outputUri"], True)
            self._halt.wait(self.poll)

    def _state(self, job_id: str, batch: bool) -> str:
        with self.fake.lock:
            return self.fake.batch(job_id)["state"] if batch else self.fake.job(job_id)["status"]["state"]

    def _run(self, job_id: str, spec: dict, properties: dict, output_uri: str, batch: bool) -> None:
        log.warning("emulated Dataproc: %s %s RUNNING", "batch" if batch else "job", job_id)
        code, output = self.execute(
            spark_submit_args(spec, properties),
            self.workdir / job_id,
            lambda: self._state(job_id, batch) not in _ACTIVE,  # cancelled at the endpoint
        )
        bucket, _, key = output_uri[len("gs://") :].partition("/")
        self.gcs.upload(bucket, f"{key}.000000000", data=output)
        if self._state(job_id, batch) in _ACTIVE:
            ok, failed = ("SUCCEEDED", "FAILED") if batch else ("DONE", "ERROR")
            self.fake.finish(job_id, ok if code == 0 else failed, None if code == 0 else f"driver exited {code}")
        self.ran.append(StepRun("serverless" if batch else "cluster", job_id, job_id, code))
        log.warning("emulated Dataproc: %s ended (exit %s)", job_id, code)
