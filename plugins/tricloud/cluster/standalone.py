"""The Spark standalone master's own status (its web UI's ``/json/``), read by the ``local`` and ``azure-vm`` backends.

The master answers ``GET <ui>/json/`` with ``status`` (``ALIVE`` / ``STANDBY`` / ...), ``workers`` (each with
its ``state`` and ``webuiaddress``) and ``activeapps`` (Spark's ``JsonProtocol.writeMasterState``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Collection
from typing import Any

from tricloud.cluster.base import ClusterStatus


def master_state(ui_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The master's ``/json/`` document, None when it does not answer (or answers something else).

    Read without any HTTP proxy: the master is on loopback or a private address, which an Airflow worker's
    ``HTTP_PROXY`` must not carry (and urllib's ``no_proxy`` does not understand CIDR ranges).

    :param ui_url: the master's web UI, e.g. ``http://127.0.0.1:8080``.
    :param timeout: seconds for the connection and the read.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{ui_url}/json/", timeout=timeout) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def cluster_status(
    state: dict[str, Any] | None,
    *,
    ignore_apps: Collection[str] = (),
    worker_gone: Callable[[dict[str, Any]], bool] = lambda worker: False,
) -> ClusterStatus:
    """The cluster's :class:`ClusterStatus` from a :func:`master_state` document.

    :param ignore_apps: names of applications that are part of the cluster (a Spark Connect server), not
        jobs that keep it busy.
    :param worker_gone: whether a worker the master still lists as ALIVE is known to be dead (the master
        drops a lost worker only after its heartbeat timeout).
    :returns: not alive (0 workers, 0 apps) unless the master's status is ``ALIVE``.
    """
    if not state or state.get("status") != "ALIVE":
        return ClusterStatus(alive=False, workers=0, active_apps=0)
    live = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE" and not worker_gone(w))
    apps = [a for a in state.get("activeapps", []) if a.get("name") not in ignore_apps]
    return ClusterStatus(alive=True, workers=live, active_apps=len(apps))
