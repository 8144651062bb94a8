"""The ``default_args`` every pipeline DAG's tasks share (customer_enrichment, customer_daily_report,
athlete_age_by_year): owner, retries with exponential backoff, the retry policy and the failure alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tricloud.alerts import ON_FAILURE
from tricloud.retries import RETRY_POLICY


def pipeline_default_args(**extra: Any) -> dict[str, Any]:
    """The shared task defaults, updated with ``extra`` (e.g. ``max_retry_delay``, ``execution_timeout``).

    2 retries, 30 s doubling backoff; deterministic errors fail on try 1 and transient ones retry
    (:data:`tricloud.retries.RETRY_POLICY`, docs/reliability.md); e-mail / webhook on a task's final
    failure if their connections exist (:data:`tricloud.alerts.ON_FAILURE`).
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
