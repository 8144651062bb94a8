"""Cluster backends behind one interface, chosen by name (as the Spark provider picks its master)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tricloud.cluster.base import ClusterBackend, ClusterInfo, ClusterStatus

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = ["ClusterBackend", "ClusterInfo", "ClusterStatus", "backend_for"]


def _local(conn: Connection, **kwargs: Any) -> ClusterBackend:
    from tricloud.cluster.local import LocalStandaloneBackend

    if not conn.host or not conn.port:
        raise ValueError(
            f"connection {conn.conn_id!r} needs a host and port for the local backend, "
            "e.g. AIRFLOW_CONN_SPARK_DEFAULT='spark://127.0.0.1:7077?deploy-mode=client&spark-binary=spark-submit'"
        )
    return LocalStandaloneBackend(host=conn.host, port=conn.port, **kwargs)


#: name -> factory(connection, **kwargs). EMR / Dataproc backends register here.
BACKENDS = {"local": _local}


def backend_for(name: str, conn: Connection, **kwargs: Any) -> ClusterBackend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown cluster backend {name!r}: choose one of {sorted(BACKENDS)}") from None
    return factory(conn, **kwargs)
