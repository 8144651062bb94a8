"""``user_defined_macros`` for the DAGs: resolved at render time in the worker, never at parse time."""

from __future__ import annotations

from tricloud import hours, settings

MACROS = {
    "lake_root": settings.lake_root,
    "hour_start": hours.hour_start,
    "hour_end": hours.hour_end,
}

#: Template snippets so every task of a DAG renders the same hour.
# For DAGs with an ``hour`` param (default None; see tricloud.hours.HOUR_PARAM_PATTERN).
HOUR_START = "{{ hour_start(data_interval_start, data_interval_end, dag_run, params.hour) }}"
HOUR_END = "{{ hour_end(data_interval_start, data_interval_end, dag_run, params.hour) }}"
LAKE_ROOT = "{{ lake_root() }}"
