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
CONNECT_CONN_ID = "spark_connect_scratch"
CONNECT_CONN_ENV = "AIRFLOW_CONN_SPARK_CONNECT_SCRATCH"
#: The line a job's runner logs once per launch, by mode (spark-submit, Spark Connect).
LAUNCH_LINES = ("spark-submit of", "in a Spark Connect session")


def scratch_cluster(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Set ``spark_scratch`` to a free master port (and ``spark_connect_scratch`` to a free port for its
    Connect server, in ``connect`` mode); return the backend kwargs (UI ports, state dir, Connect connection)."""
    master, ui, worker_ui, connect = ports.free_ports(4)
    monkeypatch.setenv(CONN_ENV, f"spark://127.0.0.1:{master}?deploy-mode=client&spark-binary=spark-submit")
    monkeypatch.setenv(CONNECT_CONN_ENV, f'{{"conn_type": "spark_connect", "host": "127.0.0.1", "port": {connect}}}')
    return {
        "webui_port": ui,
        "worker_webui_port": worker_ui,
        "state_dir": state_dir,
        "connect_conn_id": CONNECT_CONN_ID,
    }


def cluster_roles(mode: str | None = None) -> set[str]:
    """The processes (pid file roles) of a started one-worker cluster in ``mode`` (default: the configured one)."""
    from tricloud.cluster.local_connect import CONNECT, submit_mode

    mode = mode or submit_mode()
    return {"master", "worker-0"} | ({"connect"} if mode == CONNECT else set())


def launches(driver_log: str) -> int:
    """How many times a runner launched the job, counted in its driver log (either mode)."""
    return sum(driver_log.count(line) for line in LAUNCH_LINES)


def scratch_port() -> int:
    """The scratch cluster's master port."""
    return urllib.parse.urlsplit(os.environ[CONN_ENV]).port


def stop_scratch(kwargs: dict) -> None:
    from tricloud.cluster.local import LocalStandaloneBackend

    LocalStandaloneBackend.from_settings(conn_id="spark_scratch", **kwargs).stop()
    import json

    connect = json.loads(os.environ[CONNECT_CONN_ENV])["port"]
    ports.release([scratch_port(), kwargs["webui_port"], kwargs["worker_webui_port"], connect])
