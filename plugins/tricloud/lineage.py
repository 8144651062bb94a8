"""OpenLineage datasets of the pipeline's tasks, named by the OpenLineage naming spec.

The operators' ``get_openlineage_facets_on_start / _on_complete / _on_failure`` methods (the provider's
DefaultExtractor calls them, as it does for the amazon / google operators) build their
``OperatorLineage`` from these helpers, so a dataset written by one task and read by the next carries
the same (namespace, name) and the graph joins. Names (OpenLineage ``spec/Naming.md``, "Dataset Naming";
docs/design.md "Lineage"):

========================  =========================================  ===========================================
what                      namespace                                  name
========================  =========================================  ===========================================
local lake file / dir     ``file``                                   absolute path, e.g. ``/lake/clean/…/hour=10``
object-store lake (s3)    ``s3://{bucket}``                          ``{prefix}/{relpath}``
S3 replica                ``s3://{bucket}``                          ``{relpath}`` (the key prefix of a partition)
GCS replica               ``gs://{bucket}``                          ``{relpath}``
Azure Blob replica        ``wasbs://{container}@{account}``          ``{relpath}`` (as the azure provider names it)
warehouse, PostgreSQL     ``postgres://{host}:{port}``               ``{database}.public.customer_hourly``
warehouse, MySQL          ``mysql://{host}:{port}``                  ``{database}.customer_hourly``
warehouse, SQLite         ``sqlite://{absolute file path}``          ``main.customer_hourly`` (not in the spec)
========================  =========================================  ===========================================

A lake dataset is one hour's partition (``{zone}/{dataset}/date=YYYY-MM-DD/hour=HH``, UTC) or, for the
raw input, the file itself: what the task really read or wrote that hour.

Nothing here runs unless OpenLineage is enabled (a transport is configured): the provider calls the
facet methods only from its listener, and every ``openlineage`` import is inside a function, so parsing
a DAG and running a task with lineage off cost nothing more.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

#: Namespace of a replica cloud's bucket, by our cloud name (tricloud.replication.stores.STORES).
CLOUD_SCHEMES = {"s3": "s3", "gcs": "gs", "azure": "wasbs"}
#: The warehouse table (include.warehouse.TABLE), repeated here so this module needs no include import.
WAREHOUSE_TABLE = "customer_hourly"


def dataset(namespace: str, name: str) -> Dataset:
    """An OpenLineage input/output dataset (the provider's compat class, what its operators return)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=namespace, name=name)


def location(path: str | os.PathLike) -> Dataset:
    """The dataset of a file or directory: a local path (``file``, absolute) or an object URI.

    ``s3://bucket/a/b`` becomes namespace ``s3://bucket``, name ``a/b``. A local path is made absolute
    and normalised (no ``//`` or trailing ``/``) but otherwise taken literally: spaces, ``#``, ``?`` or
    ``%`` stay as they are, since a name is not a URI.
    """
    text = os.fspath(path)
    if "://" in text:
        url = urlsplit(text)
        return dataset(f"{url.scheme}://{url.netloc}", url.path.strip("/") or "/")
    return dataset("file", os.path.normpath(os.path.abspath(text)))


def lake_path(lake_root: str, relpath: str) -> Dataset:
    """The dataset of ``relpath`` (e.g. a partition's ``clean/customer_activity/date=…/hour=10``) in the lake."""
    return location(f"{str(lake_root).rstrip('/')}/{relpath}")


def partition_relpath(dataset_: tuple[str, str], hour: str | datetime) -> str:
    """``{zone}/{dataset}/date=YYYY-MM-DD/hour=HH`` of ``hour`` (UTC), as include.lake lays it out."""
    from include import lake

    return lake.partition("/", dataset_, hour).relpath


def lake_partitions(lake_root: str, datasets: Iterable[tuple[str, str]], hour: str | datetime) -> list[Dataset]:
    """One hour's partitions of ``datasets`` (``(zone, name)`` pairs) in the lake."""
    return [lake_path(lake_root, partition_relpath(d, hour)) for d in datasets]


def replica(cloud: str, bucket: str, relpath: str, account: str | None = None) -> Dataset:
    """The dataset of ``relpath`` (a key prefix) in a replica cloud; ``account`` is Azure's storage account."""
    try:
        scheme = CLOUD_SCHEMES[cloud]
    except KeyError:
        raise ValueError(f"unknown cloud {cloud!r}: choose one of {sorted(CLOUD_SCHEMES)}") from None
    if cloud == "azure":
        if not account:
            raise ValueError("an Azure Blob dataset needs the storage account name")
        return dataset(f"{scheme}://{bucket}@{account}", relpath)
    return dataset(f"{scheme}://{bucket}", relpath)


def azure_account(conn_id: str) -> str:
    """The storage account of a ``wasb`` connection, as the azure provider's operators read it."""
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    return WasbHook(wasb_conn_id=conn_id).get_conn().account_name


def replica_partitions(cloud: str, bucket: str, relpaths: Sequence[str], conn_id: str | None = None) -> list[Dataset]:
    """The partitions ``relpaths`` in one cloud (the Azure account looked up through ``conn_id``)."""
    account = None
    if cloud == "azure":
        from tricloud.replication.stores import CLOUDS

        account = azure_account(conn_id or CLOUDS["azure"][0])
    return [replica(cloud, bucket, r, account) for r in relpaths]


def warehouse_table(conn, table: str = WAREHOUSE_TABLE) -> Dataset:
    """The warehouse table behind an Airflow connection (``sqlite``, ``postgres`` or ``mysql``).

    PostgreSQL and MySQL take namespace and database from their hooks' own
    ``get_openlineage_database_info`` (what the providers' SQL operators report); the table lives in
    the default schema (``public`` on PostgreSQL). SQLite has no entry in the spec and no OpenLineage
    support in its provider: its namespace is the database file (``sqlite://`` + absolute path) and its
    schema SQLite's own ``main``.

    :raises ValueError: another connection type (include.warehouse supports only these three).
    """
    if conn.conn_type == "sqlite":
        return dataset(f"sqlite://{os.path.abspath(conn.host)}", f"main.{table}")
    if conn.conn_type in ("postgres", "mysql"):
        info = conn.get_hook().get_openlineage_database_info(conn)
        database = info.database or conn.schema
        schema = "public." if conn.conn_type == "postgres" else ""
        return dataset(f"{info.scheme}://{info.authority}", f"{database}.{schema}{table}")
    raise ValueError(f"no lineage name for a {conn.conn_type!r} warehouse: use sqlite, postgres or mysql")


def lineage(inputs: Iterable[Dataset] = (), outputs: Iterable[Dataset] = ()) -> OperatorLineage:
    """The provider's ``OperatorLineage`` of ``inputs`` and ``outputs`` (duplicates dropped, order kept)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    def unique(items: Iterable[Dataset]) -> list[Dataset]:
        seen: dict[tuple[str, str], Dataset] = {}
        for d in items:
            seen.setdefault((d.namespace, d.name), d)
        return list(seen.values())

    return OperatorLineage(inputs=unique(inputs), outputs=unique(outputs))


def spark_job_lineage(metrics: dict | None) -> OperatorLineage:
    """Lineage of a Spark job from the metrics it wrote: ``input`` read, ``output`` and ``rejects`` written.

    These are the paths the job itself resolved and reported (include/jobs), not a guess from its
    arguments; a job whose metrics are missing (it failed before writing them) has none.
    """
    metrics = metrics or {}
    inputs = [location(metrics["input"])] if metrics.get("input") else []
    outputs = [location(metrics[k]) for k in ("output", "rejects") if metrics.get(k)]
    return lineage(inputs, outputs)
