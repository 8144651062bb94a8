"""Cluster backends behind one interface, chosen by configuration, not by DAG code.

``TRICLOUD_CLUSTER_BACKEND`` (``local`` by default; ``emr``, ``emr-serverless``,
``dataproc``, ``dataproc-serverless``) names the backend a
deployment uses; each backend reads its own settings (connections and ``TRICLOUD_*`` variables) in
``from_settings`` and fails fast naming what to set. The same DAG files run on every backend.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from include.errors import ConfigError
from tricloud.cluster.base import (
    ClusterBackend,
    ClusterInfo,
    ClusterStatus,
    JobFailed,
    JobHandle,
    JobState,
    JobStatus,
    SparkJob,
    job_key,
)

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "ClusterBackend",
    "ClusterInfo",
    "ClusterStatus",
    "JobFailed",
    "JobHandle",
    "JobState",
    "JobStatus",
    "SparkJob",
    "backend_from_settings",
    "backend_name",
    "job_key",
]

#: The environment variable that picks the backend of a deployment.
BACKEND_ENV = "TRICLOUD_CLUSTER_BACKEND"

#: name -> "module:Class"; each class has ``from_settings(**overrides) -> ClusterBackend``.
BACKENDS = {
    "local": "tricloud.cluster.local:LocalStandaloneBackend",
    "emr": "tricloud.cluster.emr:EmrBackend",
    "emr-serverless": "tricloud.cluster.emr_serverless:EmrServerlessBackend",
    "azure-vm": "tricloud.cluster.azure_vm:AzureVmBackend",
    "dataproc": "tricloud.cluster.dataproc:DataprocBackend",
    "dataproc-serverless": "tricloud.cluster.dataproc_serverless:DataprocServerlessBackend",
}


def backend_name(name: str | None = None) -> str:
    """The backend to use: ``name`` if given, else ``$TRICLOUD_CLUSTER_BACKEND``, else ``local``."""
    chosen = (name or os.environ.get(BACKEND_ENV) or "local").strip()
    if chosen not in BACKENDS:
        raise ConfigError(f"unknown cluster backend {chosen!r}: set {BACKEND_ENV} to one of {sorted(BACKENDS)}")
    return chosen


def backend_from_settings(name: str | None = None, **overrides: Any) -> ClusterBackend:
    """Build the configured backend. ``overrides`` (operator ``backend_kwargs``) win over settings.

    :raises ValueError: unknown backend name, or a setting the backend needs is missing (the message
        names the variable or connection to set).
    """
    module_name, _, class_name = BACKENDS[backend_name(name)].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_settings(**overrides)
