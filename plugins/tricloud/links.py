"""Operator extra links: buttons on a task in the web UI that open the Spark UIs of that run.

In Airflow 3 the worker computes each link right after the task ran (``get_link`` is called on the
executed operator) and stores it as an XCom; the UI only reads that XCom. So the operators below keep
the URLs they learned during ``execute`` on themselves, and an empty string means "not known" (e.g.
the task failed before the master answered).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class SparkMasterUILink(BaseOperatorLink):
    """The standalone master's web UI: workers, running and completed applications."""

    name = "Spark master UI"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return getattr(operator, "spark_ui_url", None) or ""


class SparkApplicationLink(BaseOperatorLink):
    """The application this task submitted, on the master UI (kept there after the job ends)."""

    name = "Spark application"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        ui, app = getattr(operator, "spark_ui_url", None), getattr(operator, "spark_application_id", None)
        return f"{ui}/app/?appId={app}" if ui and app else ""


class _ConsoleLink(BaseOperatorLink):
    """One of the backend's console links (``operator.console_links``, from ``ClusterBackend.console_links``)."""

    kind = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return (getattr(operator, "console_links", None) or {}).get(self.kind, "")


class ClusterConsoleLink(_ConsoleLink):
    """The cluster's page: the standalone master UI locally, the EMR console's cluster / application page."""

    name = "Cluster console"
    kind = "cluster"


class JobPageLink(_ConsoleLink):
    """The job's page: the Spark application on the master UI, the EMR step / job run."""

    name = "Job page"
    kind = "job"


class DriverLogLink(_ConsoleLink):
    """The driver's full log: a file on the worker locally, the log location in the cloud."""

    name = "Driver log"
    kind = "driver_log"
