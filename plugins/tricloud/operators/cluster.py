"""Operators that bring a Spark cluster up for a run and take it down only if the run started it.

The backend (local standalone, EMR, EMR Serverless) comes from configuration
(``TRICLOUD_CLUSTER_BACKEND``, :func:`tricloud.cluster.backend_from_settings`), never from the DAG file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tricloud.links import ClusterConsoleLink, SparkMasterUILink

if TYPE_CHECKING:
    from airflow.sdk import Context


class StartClusterOperator(BaseOperator):
    """
    Make sure the configured cluster is running and hand what a run needs of it on (XCom).

    With the ``local`` backend it starts a standalone master and ``workers`` workers from the installed
    pyspark on the connection's host/port when none answers, waits until the workers are registered,
    and reuses a running cluster otherwise; a cloud backend reuses or creates its cluster. The returned
    dict (:class:`~tricloud.cluster.ClusterInfo`) says whether this task started it and its
    ``cluster_id``. In the UI the task links to the cluster's web UI or console page.

    :param conn_id: the backend's connection (local: Spark connection with the master host and port);
        None for the backend's default (``spark_default`` locally). (templated)
    :param workers: number of workers that must be registered. (templated)
    :param timeout: seconds to wait for the cluster to be ready.
    :param backend_kwargs: extra settings for the backend (e.g. ``worker_cores``, ``worker_memory``).
    """

    template_fields: Sequence[str] = ("conn_id", "workers")
    ui_color = "#fde8d0"
    operator_extra_links = (SparkMasterUILink(), ClusterConsoleLink())

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        workers: int = 1,
        timeout: float = 120.0,
        backend_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.workers = workers
        self.timeout = timeout
        self.backend_kwargs = backend_kwargs or {}
        self.spark_ui_url: str | None = None  # read by the extra links once the task ran
        self.console_links: dict[str, str] = {}

    def execute(self, context: Context) -> dict:
        cluster = _backend(self.conn_id, workers=int(self.workers), **self.backend_kwargs)
        info = cluster.start(timeout=self.timeout)
        self.spark_ui_url = info.ui_url
        self.console_links = {"cluster": info.ui_url} if info.ui_url else {}
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
    stack's, or another run's) is left alone. It passes the start task's ``cluster_id`` to the backend;
    a cluster that is already gone (stopped, terminated) is success, not an error.

    :param start_task_id: task id of the StartClusterOperator whose XCom says what it started.
    :param conn_id: the backend's connection, as for the start task. (templated)
    :param backend_kwargs: extra settings for the backend, as for the start task.
    """

    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#fde8d0"

    def __init__(
        self,
        *,
        start_task_id: str = "start_cluster",
        conn_id: str | None = None,
        backend_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_task_id = start_task_id
        self.conn_id = conn_id
        self.backend_kwargs = backend_kwargs or {}

    def execute(self, context: Context) -> bool:
        info = context["ti"].xcom_pull(task_ids=self.start_task_id)
        if not info or not info.get("started"):
            self.log.info("Cluster left running: it was not started by this run")
            return False
        cluster = _backend(self.conn_id, **self.backend_kwargs)
        status = cluster.status()
        if status.alive and status.active_apps:
            self.log.info("Cluster left running: %d other application(s) still use it", status.active_apps)
            return False
        # Always asked to stop what this run started: a backend treats "already gone" as success (False).
        stopped = cluster.stop(cluster_id=info.get("cluster_id"))
        if stopped:
            self.log.info("Stopped the cluster this run started at %s", info.get("master_url"))
        else:
            self.log.info("The cluster this run started (%s) was already gone: nothing to stop", info.get("master_url"))
        return stopped


def _backend(conn_id: str | None, **overrides: Any):
    """The configured backend; ``conn_id`` passed on only when the task names one."""
    from tricloud.cluster import backend_from_settings

    if conn_id:
        overrides["conn_id"] = conn_id
    return backend_from_settings(**overrides)
