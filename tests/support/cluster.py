"""A second, private Spark standalone cluster for tests that start, kill and stop clusters.

On free ports (stack.ports) and with its own state dir, so the session's cluster and a running
`make demo` are never disturbed. Its connection is ``spark_scratch``.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

from stack import ports

CONN_ENV = "AIRFLOW_CONN_SPARK_SCRATCH"


def scratch_cluster(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Set ``spark_scratch`` to a free master port; return the backend kwargs (UI ports, state dir)."""
    master, ui, worker_ui = ports.free_ports(3)
    monkeypatch.setenv(CONN_ENV, f"spark://127.0.0.1:{master}?deploy-mode=client&spark-binary=spark-submit")
    return {"webui_port": ui, "worker_webui_port": worker_ui, "state_dir": state_dir}


def scratch_port() -> int:
    """The scratch cluster's master port."""
    return urllib.parse.urlsplit(os.environ[CONN_ENV]).port


def stop_scratch(kwargs: dict) -> None:
    from tricloud.cluster.local import LocalStandaloneBackend

    LocalStandaloneBackend.from_settings(conn_id="spark_scratch", **kwargs).stop()
    ports.release([scratch_port(), kwargs["webui_port"], kwargs["worker_webui_port"]])
