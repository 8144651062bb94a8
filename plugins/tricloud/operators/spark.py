"""Run a PySpark job from ``include/jobs`` through the apache-spark provider's SparkSubmitHook."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.lease import LEASE_LOST_EXIT
from tricloud.links import SparkApplicationLink, SparkMasterUILink

if TYPE_CHECKING:
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk import Context


def lease_lost(err: AirflowException) -> bool:
    """Whether spark-submit failed because the job exited with :data:`include.lease.LEASE_LOST_EXIT`.

    The provider's SparkSubmitHook reports the exit code only in its message ("Error code is: N.").
    """
    m = re.search(r"Error code is: (\d+)", str(err))
    return m is not None and int(m.group(1)) == LEASE_LOST_EXIT


class SparkJobOperator(BaseOperator):
    """
    Submit a PySpark application with spark-submit and return what it produced.

    Before submitting it checks that the Spark connection exists, is of type ``spark`` and that the
    master answers (the provider hook would otherwise fall back to YARN, or retry for a minute). It
    appends ``--metrics-file <tmp>`` to the application arguments; a job that writes JSON metrics there
    (client deploy mode: the driver runs here) has them returned to XCom, e.g. output path and row
    counts. Killing the task kills spark-submit and its driver. A job exiting with
    ``include.lease.LEASE_LOST_EXIT`` (it lost the hour's lease) fails the task without retry. In the
    UI the task links to the Spark master UI and to its application there.

    The driver and executors use this interpreter (``PYSPARK_PYTHON``) and see the project on
    ``PYTHONPATH``, so jobs can ``import include``.

    :param application: path of the ``.py`` file to submit. (templated)
    :param application_args: arguments for the application, e.g. the hour to process. (templated)
    :param conf: Spark configuration, e.g. ``{"spark.cores.max": "1"}``. (templated)
    :param conn_id: Spark connection id (templated), default ``spark_default``.
    :param name: Spark application name. (templated)
    :param executor_memory: memory per executor, e.g. ``768m``.
    :param driver_memory: driver memory, e.g. ``1g``.
    :param env_vars: extra environment for spark-submit.
    :param backend: cluster backend that watches the cluster during the job (``local``; None: no watch).
        A worker lost mid-job makes Spark wait for resources forever: when the master has had no live
        worker for ``lost_cluster_timeout`` seconds, spark-submit is killed and the task fails saying
        so (its retry then restarts the dead worker under the live master before submitting).
    :param lost_cluster_timeout: seconds without a live worker (or master) before giving up.
    :param backend_kwargs: extra arguments for the backend, as for StartClusterOperator.
    """

    template_fields: Sequence[str] = ("application", "application_args", "conf", "conn_id", "name")
    template_fields_renderers: ClassVar[dict[str, str]] = {"conf": "json", "application_args": "py"}
    ui_color = "#ffe9a8"
    operator_extra_links = (SparkMasterUILink(), SparkApplicationLink())

    def __init__(
        self,
        *,
        application: str,
        application_args: list[str] | None = None,
        conf: dict[str, Any] | None = None,
        conn_id: str = "spark_default",
        name: str | None = None,
        executor_memory: str | None = None,
        driver_memory: str | None = None,
        env_vars: dict[str, str] | None = None,
        backend: str | None = "local",
        lost_cluster_timeout: float = 60.0,
        backend_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.application = application
        self.application_args = application_args
        self.conf = conf
        self.conn_id = conn_id
        self.name = name
        self.executor_memory = executor_memory
        self.driver_memory = driver_memory
        self.env_vars = env_vars
        self.backend = backend
        self.lost_cluster_timeout = lost_cluster_timeout
        self.backend_kwargs = backend_kwargs or {}
        self._hook: SparkSubmitHook | None = None
        self._lost: str | None = None
        # Read by the extra links once the task ran.
        self.spark_ui_url: str | None = None
        self.spark_application_id: str | None = None

    def execute(self, context: Context) -> dict:
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        from tricloud import settings
        from tricloud.cluster import backend_for
        from tricloud.connections import require_connection, require_reachable

        conn = require_connection(self.conn_id, ("spark",))
        self._lost = None  # this execution's watchdog verdict, not a previous one's
        cluster = None
        if conn.host and conn.port:
            require_reachable(conn.host, conn.port, f"Spark master of connection {self.conn_id!r}")
            if self.backend:
                cluster = backend_for(self.backend, conn, **self.backend_kwargs)
                self.spark_ui_url = cluster.ui_url
                status = cluster.status()
                if status.alive and status.workers == 0:
                    # e.g. the retry after a worker died mid-job: the master lives, its worker does not.
                    self.log.warning("No live worker at %s: restarting the cluster's workers", conn.host)
                    cluster.start()
        if not Path(self.application).is_file():
            raise FileNotFoundError(f"Spark application {self.application} does not exist")

        with tempfile.TemporaryDirectory(prefix="sparkjob-") as tmp:
            metrics_file = Path(tmp) / "metrics.json"
            self._hook = SparkSubmitHook(
                conn_id=self.conn_id,
                conf={str(k): str(v) for k, v in (self.conf or {}).items()},
                name=self.name or f"{self.dag_id}.{self.task_id}",
                application_args=[*(str(a) for a in self.application_args or []), "--metrics-file", str(metrics_file)],
                executor_memory=self.executor_memory,
                driver_memory=self.driver_memory,
                env_vars={**settings.python_env(), **(self.env_vars or {})},
            )
            done = threading.Event()
            if cluster is not None:
                threading.Thread(target=self._watch, args=(cluster, done), daemon=True).start()
            try:
                self._hook.submit(self.application)
            except AirflowException as err:
                if self._lost:
                    raise AirflowException(f"{self._lost}; spark-submit was stopped. {err}") from err
                if lease_lost(err):
                    raise AirflowFailException(
                        f"the job lost the hour's lease (exit code {LEASE_LOST_EXIT}, LeaseLostError in the log "
                        f"above names the holder): not retried, nothing more was published. {err}"
                    ) from err
                raise
            finally:
                done.set()
            result: dict[str, Any] = {"application": self.application}
            if metrics_file.exists():
                result.update(json.loads(metrics_file.read_text()))
                self.spark_application_id = result.get("application_id")
            else:
                self.log.warning("The job wrote no metrics to %s (cluster deploy mode?)", metrics_file)
        self.log.info("Spark job done: %s", json.dumps(result, default=str))
        return result

    def _watch(self, cluster, done: threading.Event, poll: float = 2.0) -> None:
        """Kill spark-submit once the cluster has had no live worker for ``lost_cluster_timeout`` s."""
        lost_since = None
        while not done.wait(poll):
            try:
                status = cluster.status()
            except Exception:  # a flaky status call is not a lost cluster
                self.log.debug("Cluster status check failed", exc_info=True)
                continue
            if status.alive and status.workers > 0:
                lost_since = None
                continue
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since >= self.lost_cluster_timeout:
                what = "its master" if not status.alive else "every worker"
                self._lost = (
                    f"the Spark cluster at {cluster.master_url} lost {what} during the job and had none back "
                    f"for {self.lost_cluster_timeout:.0f}s (Spark would wait for resources forever)"
                )
                self.log.error("%s: stopping spark-submit", self._lost)
                if self._hook is not None:
                    self._hook.on_kill()
                return

    def on_kill(self) -> None:
        if self._hook is not None:
            self._hook.on_kill()
