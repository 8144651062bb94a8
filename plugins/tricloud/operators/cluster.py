"""Operators that bring a Spark cluster up for a run and take it down only if the run started it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tricloud.links import SparkMasterUILink

if TYPE_CHECKING:
    from airflow.sdk import Context


class StartClusterOperator(BaseOperator):
    """
    Make sure a Spark cluster is running and hand its master URL on (XCom).

    With the ``local`` backend it starts a standalone master and ``workers`` workers from the installed
    pyspark on the connection's host/port when none answers, waits until the workers are registered,
    and reuses a running cluster otherwise. The returned dict says whether this task started it. In the UI
    the task links to the cluster's web UI.

    :param conn_id: Spark connection (type ``spark``) giving the master host and port. (templated)
    :param backend: cluster backend name, ``local`` by default. (templated)
    :param workers: number of workers that must be registered. (templated)
    :param timeout: seconds to wait for the cluster to be ready.
    :param backend_kwargs: extra arguments for the backend (e.g. ``worker_cores``, ``worker_memory``).
    """

    template_fields: Sequence[str] = ("conn_id", "backend", "workers")
    ui_color = "#fde8d0"
    operator_extra_links = (SparkMasterUILink(),)

    def __init__(
        self,
        *,
        conn_id: str = "spark_default",
        backend: str = "local",
        workers: int = 1,
        timeout: float = 120.0,
        backend_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.backend = backend
        self.workers = workers
        self.timeout = timeout
        self.backend_kwargs = backend_kwargs or {}
        self.spark_ui_url: str | None = None  # read by the extra link once the task ran

    def execute(self, context: Context) -> dict:
        from tricloud.cluster import backend_for
        from tricloud.connections import require_connection

        conn = require_connection(self.conn_id, ("spark",))
        cluster = backend_for(self.backend, conn, workers=int(self.workers), **self.backend_kwargs)
        info = cluster.start(timeout=self.timeout)
        self.spark_ui_url = info.ui_url
        self.log.info(
            "Spark cluster %s at %s (%d workers, UI %s)",
            "started" if info.started else "reused",
            info.master_url,
            info.workers,
            info.ui_url,
        )
        return info.to_dict()


class StopClusterOperator(BaseOperator):
    """
    Stop the cluster if, and only if, ``start_task_id`` started it in this run and no application runs.

    Meant as the teardown of :class:`StartClusterOperator`: a cluster that was already running (the local
    stack's, or another run's) is left alone.

    :param start_task_id: task id of the StartClusterOperator whose XCom says what it started.
    :param conn_id: Spark connection, as for the start task. (templated)
    :param backend: cluster backend name. (templated)
    """

    template_fields: Sequence[str] = ("conn_id", "backend")
    ui_color = "#fde8d0"

    def __init__(
        self,
        *,
        start_task_id: str = "start_cluster",
        conn_id: str = "spark_default",
        backend: str = "local",
        backend_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_task_id = start_task_id
        self.conn_id = conn_id
        self.backend = backend
        self.backend_kwargs = backend_kwargs or {}

    def execute(self, context: Context) -> bool:
        from tricloud.cluster import backend_for
        from tricloud.connections import require_connection

        info = context["ti"].xcom_pull(task_ids=self.start_task_id)
        if not info or not info.get("started"):
            self.log.info("Cluster left running: it was not started by this run")
            return False
        cluster = backend_for(self.backend, require_connection(self.conn_id, ("spark",)), **self.backend_kwargs)
        active = cluster.status().active_apps
        if active:
            self.log.info("Cluster left running: %d other application(s) still use it", active)
            return False
        stopped = cluster.stop()
        self.log.info("Stopped the cluster this run started at %s", info.get("master_url"))
        return stopped
