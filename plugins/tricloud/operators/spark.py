"""Run a PySpark job from ``include/jobs`` through the apache-spark provider's SparkSubmitHook."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from tricloud.links import SparkApplicationLink, SparkMasterUILink

if TYPE_CHECKING:
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk import Context


class SparkJobOperator(BaseOperator):
    """
    Submit a PySpark application with spark-submit and return what it produced.

    Before submitting it checks that the Spark connection exists, is of type ``spark`` and that the
    master answers (the provider hook would otherwise fall back to YARN, or retry for a minute). It
    appends ``--metrics-file <tmp>`` to the application arguments; a job that writes JSON metrics there
    (client deploy mode: the driver runs here) has them returned to XCom, e.g. output path and row
    counts. Killing the task kills spark-submit and its driver. In the UI the task links to the Spark
    master UI and to its application there.

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
        self._hook: SparkSubmitHook | None = None
        # Read by the extra links once the task ran.
        self.spark_ui_url: str | None = None
        self.spark_application_id: str | None = None

    def execute(self, context: Context) -> dict:
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        from tricloud import settings
        from tricloud.cluster import backend_for
        from tricloud.connections import require_connection, require_reachable

        conn = require_connection(self.conn_id, ("spark",))
        if conn.host and conn.port:
            self.spark_ui_url = backend_for("local", conn).ui_url
            require_reachable(conn.host, conn.port, f"Spark master of connection {self.conn_id!r}")
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
            self._hook.submit(self.application)
            result: dict[str, Any] = {"application": self.application}
            if metrics_file.exists():
                result.update(json.loads(metrics_file.read_text()))
                self.spark_application_id = result.get("application_id")
            else:
                self.log.warning("The job wrote no metrics to %s (cluster deploy mode?)", metrics_file)
        self.log.info("Spark job done: %s", json.dumps(result, default=str))
        return result

    def on_kill(self) -> None:
        if self._hook is not None:
            self._hook.on_kill()
