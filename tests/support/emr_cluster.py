"""A test-side EMR "cluster": runs the steps the in-process moto holds, on this machine, and ends them.

moto keeps EMR's control plane (clusters, steps, tags) but never runs a step nor finishes one. This
thread plays the cluster's part, explicitly and visibly: it watches moto's EMR backend objects and, for
each new step (``command-runner.jar`` ``spark-submit …``), runs that very command line here:

- the code the backend staged is fetched from the ``s3://`` URIs in the arguments (the application
  ``.py`` and the ``--py-files`` zip), so the job runs the staged bytes, not this checkout;
- ``--deploy-mode cluster`` becomes ``--master local[2]`` (YARN's cluster mode has no local equivalent);
  ``spark.yarn.appMasterEnv.*`` become the driver's environment, as YARN would set them;
- **the one visible difference from EMR**: this machine's Spark has no EMRFS (no ``s3://`` connector),
  so the driver gets ``TRICLOUD_OBJECT_STORE_IO=staged`` (include/jobs/staged_io.py) and the S3
  endpoint of the emulator; on EMR the same job reads and writes ``s3://`` through EMRFS.

The step's state moves PENDING → RUNNING → COMPLETED / FAILED through moto's ``Step`` objects (as the
tests of the backends do), spark-submit's output lands gzipped where EMR ships a step's stderr
(``<LogUri>/<cluster>/steps/<step>/stderr.gz``), and a step cancelled at the endpoint (CancelSteps)
is killed. ``ran`` records every step run, for the tests to count.

:class:`LocalSparkRunner` is the part shared with the emulated EMR Serverless application
(tests/support/emr_serverless_app.py): the command line, the driver's environment, the run itself.
"""

from __future__ import annotations

import gzip
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.moto_aws import REGION, MotoAws

log = logging.getLogger(__name__)

#: Where the emulated driver's Spark runs; two cores for the two ingest jobs' tasks at most.
LOCAL_MASTER = "local[2]"
_ACTIVE = ("PENDING", "RUNNING")


@dataclass(frozen=True)
class StepRun:
    """One step or job run run here: EMR cluster (or Serverless application) id, step (or job run) id, its
    name (the job key), the driver's exit code."""

    cluster_id: str
    step_id: str
    name: str
    exit_code: int


class LocalSparkRunner(threading.Thread):
    """What the emulated EMR cluster and the emulated EMR Serverless application share: run one
    cluster-side ``spark-submit`` command line here (see the module docstring); a context manager.

    Subclasses implement :meth:`run` (watch moto's objects, call :meth:`execute`, move states).

    :param aws: the in-process emulator (:func:`tests.support.moto_aws.moto_aws`).
    :param workdir: a directory of the test's for staged code and the drivers' working directories.
    :param poll: seconds between looks at moto's objects.
    """

    #: ``--conf`` prefixes whose values become the driver's environment (YARN; EMR Serverless; Dataproc
    #: Serverless).
    DRIVER_ENV_PREFIXES = ("spark.yarn.appMasterEnv.", "spark.emr-serverless.driverEnv.", "spark.dataproc.driverEnv.")

    def __init__(self, aws: MotoAws, workdir: Path, poll: float = 0.2, name: str = "emulated-emr") -> None:
        super().__init__(name=name, daemon=True)
        self.aws, self.workdir, self.poll = aws, Path(workdir), poll
        self.ran: list[StepRun] = []
        self._seen: set[str] = set()
        self._halt = threading.Event()

    def __enter__(self) -> LocalSparkRunner:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join(60)

    def _fetch(self, uri: str, into: Path) -> str:
        bucket, _, key = uri[len("s3://") :].partition("/")
        local = into / key.rsplit("/", 1)[-1]
        body = self.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        local.write_bytes(body)
        return str(local)

    def command(self, args: list[str], into: Path) -> tuple[list[str], dict[str, str]]:
        """The local spark-submit command line and driver environment for the cluster-side ``args``.

        ``--deploy-mode``/``--master`` give way to ``--master local[2]``; driver-environment confs become
        the environment; staged ``s3://`` ``.py``/``.zip`` are fetched into ``into``.
        """
        if not args or args[0] != "spark-submit":
            raise ValueError(f"not a spark-submit command: {args[:3]}")
        cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", LOCAL_MASTER]
        env, rest = {}, list(args[1:])
        while rest:
            arg = rest.pop(0)
            if arg in ("--deploy-mode", "--master"):
                rest.pop(0)
            elif arg == "--conf" and rest[0].startswith(self.DRIVER_ENV_PREFIXES):
                conf = rest.pop(0)
                prefix = next(p for p in self.DRIVER_ENV_PREFIXES if conf.startswith(p))
                name, _, value = conf[len(prefix) :].partition("=")
                env[name] = value
            elif arg.startswith(("s3://", "gs://")) and arg.endswith((".py", ".zip")):
                cmd.append(self._fetch(arg, into))  # the staged application or --py-files zip
            else:
                cmd.append(arg)
        return cmd, env

    def driver_env(self, extra: dict[str, str]) -> dict[str, str]:
        """This machine's Spark and Python, no project on PYTHONPATH (the staged zip must do), the emulator."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
        bin_dir = str(Path(sys.executable).parent)
        env |= {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "TRICLOUD_OBJECT_STORE_IO": "staged",  # the one difference from EMR: no EMRFS here
        }
        return env | self.store_env() | extra

    def store_env(self) -> dict[str, str]:
        """The driver's standard client settings for the object store (here: the S3 emulator)."""
        return {
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's published test key)
            "AWS_DEFAULT_REGION": REGION,
        }

    def execute(self, args: list[str], into: Path, cancelled: Callable[[], bool]) -> tuple[int, bytes]:
        """Run ``args`` here in ``into``; kill it when ``cancelled()`` turns true.

        Returns spark-submit's exit code and its output (stdout and stderr, as the driver's log); a
        command this runner cannot run is exit code 1 with the reason as the log.
        """
        into.mkdir(parents=True, exist_ok=True)
        out = into / "stderr"
        try:
            cmd, extra = self.command(args, into)
            with open(out, "wb") as sink:
                proc = subprocess.Popen(
                    cmd, cwd=into, env=self.driver_env(extra), stdout=sink, stderr=sink, start_new_session=True
                )
                while proc.poll() is None:
                    if cancelled() or self._halt.is_set():  # cancelled at the endpoint, or the test ends
                        os.killpg(proc.pid, signal.SIGKILL)  # the JVM and its Python driver
                        proc.wait()
                        break
                    time.sleep(self.poll)
            code = proc.returncode
        except Exception as err:  # a job this runner cannot run fails, as on EMR, with the reason in its log
            out.write_text(f"emulated EMR could not run the job: {err}\n")
            code = 1
        return code, out.read_bytes()


class EmulatedEmrCluster(LocalSparkRunner):
    """Run moto's EMR steps locally (see the module docstring); use as a context manager."""

    def run(self) -> None:
        while not self._halt.is_set():
            for cluster in list(self.aws.emr().clusters.values()):
                if cluster.state in ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"):
                    continue
                for step in list(cluster.steps):
                    if step.id not in self._seen and step.state in _ACTIVE:
                        self._seen.add(step.id)
                        self._run_step(cluster, step)
                if cluster.state == "RUNNING" and not any(s.state in _ACTIVE for s in cluster.steps):
                    cluster.state = "WAITING"  # as EMR: a cluster with no step to run waits
            self._halt.wait(self.poll)

    def _run_step(self, cluster, step) -> None:
        step.state = "RUNNING"
        step.start()
        log.warning("emulated EMR: step %s (%s) on %s RUNNING", step.id, step.name, cluster.id)
        code, output = self.execute(list(step.args), self.workdir / step.id, lambda: step.state == "CANCELLED")
        if cluster.log_uri:
            log_uri = cluster.log_uri.replace("s3n://", "s3://").rstrip("/")
            self.aws.put_object(f"{log_uri}/{cluster.id}/steps/{step.id}/stderr.gz", gzip.compress(output))
        if step.state != "CANCELLED":
            step.state = "COMPLETED" if code == 0 else "FAILED"
            step.last_state_change_reason = None if code == 0 else f"spark-submit exited {code}"
        step.end_date_time = step.start_date_time
        self.ran.append(StepRun(cluster.id, step.id, step.name, code))
        log.warning("emulated EMR: step %s %s (exit %s)", step.id, step.state, code)
