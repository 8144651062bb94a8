"""The ``default_args`` of the DAGs' tasks: the pipelines' (customer_enrichment, customer_daily_report,
athlete_age_by_year: owner, retries with exponential backoff, the retry policy and the failure alert) and
the manual DAGs' (restore_lake: the same, its alert naming the run; check_connections: no retry, the alert)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tricloud.alerts import ON_FAILURE, ON_FAILURE_BY_RUN
from tricloud.retries import RETRY_POLICY


def pipeline_default_args(**extra: Any) -> dict[str, Any]:
    """The shared task defaults, updated with ``extra`` (e.g. ``max_retry_delay``, ``execution_timeout``).

    2 retries, 30 s doubling backoff; deterministic errors fail on try 1 and transient ones retry
    (:data:`tricloud.retries.RETRY_POLICY`, docs/reliability.md); e-mail / webhook on a task's final
    failure if their connections exist (:data:`tricloud.alerts.ON_FAILURE`, which names the hour; a DAG
    without an hourly interval passes ``on_failure_callback=ON_FAILURE_BY_RUN`` to name the run instead).
    """
    return {
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "retry_policy": RETRY_POLICY,
        "on_failure_callback": ON_FAILURE,
        **extra,
    }


def restore_default_args(**extra: Any) -> dict[str, Any]:
    """restore_lake's task defaults: the pipelines' retries and policy (a cloud's transient error is
    retried with backoff, a missing bucket or a refused credential fails at try 1) and the failure alert,
    which names the run (a restore processes a range of hours, not one)."""
    return pipeline_default_args(on_failure_callback=ON_FAILURE_BY_RUN, **extra)


def check_default_args(**extra: Any) -> dict[str, Any]:
    """check_connections' task defaults: no retry and the failure alert (naming the run).

    The check is run by someone waiting for its verdict: a retry would hide a blip they should see and
    delay a broken connection's error by its backoff. Each failed task's alert carries the error's first
    line, which names the connection and the ``AIRFLOW_CONN_*`` variable to fix (:mod:`tricloud.health`).
    """
    return {"owner": "data-platform", "retries": 0, "on_failure_callback": ON_FAILURE_BY_RUN, **extra}
