"""Operators that copy lake hours to the replica clouds, verify them, and restore from a survivor.

The primary lake is ``lake_root``: a local directory or ``s3://bucket/prefix`` (opened by
:func:`tricloud.lake.lake` with the ``aws_default`` connection). A cloud that holds the primary lake gets
no replica of its own: the other clouds do. XCom values are the ``to_dict()`` of the typed results in
``include.replication.results`` (``Replicated``, ``VerifyReport``, ``Restored``): exactly their fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from include.replication.results import VerifyReport


def _bucket(bucket: str | None) -> str:
    from tricloud.replication.stores import replica_bucket

    return bucket or replica_bucket()


def _replica_clouds(clouds: Sequence[str], lake_root: str) -> list[str]:
    """``clouds`` without the one holding the primary lake (it is checked as the lake itself)."""
    from tricloud.replication.stores import primary_cloud

    return [c for c in clouds if c != primary_cloud(lake_root)]


def _hour_relpaths(hour: str, pipeline: str) -> list[str]:
    """The hour's partitions (``zone/dataset/date=…/hour=…``) that replication copies, for lineage."""
    from include.replication.manifests import pipeline_named
    from tricloud.lineage import partition_relpath

    return [partition_relpath(d, hour) for d in pipeline_named(pipeline).outputs]


class ReplicateHourOperator(BaseOperator):
    """
    Copy one hour of the lake (clean, rejects, enriched partitions) to one cloud, verified, manifest last.

    Objects whose SHA-256 already matches are skipped, so an unchanged hour sends 0 bytes. Uses the
    provider hook of the cloud (S3Hook, GCSHook, WasbHook) with the given connection.

    :param cloud: ``s3``, ``gcs`` or ``azure``. The cloud holding the primary lake (``LAKE_ROOT=s3://…``)
        gets no replica: the task logs so and returns None.
    :param hour: start of the hour, ISO 8601. (templated)
    :param lake_root: the primary lake, a directory or ``s3://bucket/prefix``. (templated)
    :param conn_id: connection id; default per cloud (``aws_default``, ``google_cloud_default``,
        ``wasb_default``). (templated)
    :param bucket: bucket or container; default ``$REPLICA_BUCKET``. (templated)
    :param pipeline: whose hour (names the manifest and the datasets); default ``customer_enrichment``.
    :return: ``Replicated.to_dict()``: cloud, bucket, hour, dataset, objects, uploaded, skipped,
        bytes_uploaded, stale_deleted, manifest, seconds.
    """

    template_fields: Sequence[str] = ("hour", "lake_root", "conn_id", "bucket")
    ui_color = "#d6eaff"

    def __init__(
        self,
        *,
        cloud: str,
        hour: str,
        lake_root: str,
        conn_id: str | None = None,
        bucket: str | None = None,
        pipeline: str = "customer_enrichment",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloud = cloud
        self.hour = hour
        self.lake_root = lake_root
        self.conn_id = conn_id
        self.bucket = bucket
        self.pipeline = pipeline

    def execute(self, context: Context) -> dict | None:
        from include.replication import replicate_hour
        from tricloud.lake import lake
        from tricloud.replication.stores import make_store

        if not _replica_clouds([self.cloud], self.lake_root):
            self.log.info("%s holds the primary lake %s: it gets no replica of its own", self.cloud, self.lake_root)
            return None
        store = make_store(self.cloud, _bucket(self.bucket), self.conn_id)
        result = replicate_hour(store, lake(self.lake_root), self.hour, pipeline=self.pipeline)
        self.log.info(
            "%s://%s: %d objects, %d uploaded (%d bytes), %d skipped, %d stale deleted",
            self.cloud,
            store.bucket,
            result.objects,
            result.uploaded,
            result.bytes_uploaded,
            result.skipped,
            result.stale_deleted,
        )
        return result.to_dict()

    # -- OpenLineage (called by the provider's listener only when lineage is on) -----------------
    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The hour's lake partitions in, the same partitions in this cloud out (known before the copy)."""
        from tricloud.lineage import lake_path, lineage, replica_partitions

        if not _replica_clouds([self.cloud], self.lake_root):
            return lineage()  # the cloud holding the primary lake gets no copy
        relpaths = _hour_relpaths(self.hour, self.pipeline)
        return lineage(
            inputs=[lake_path(self.lake_root, r) for r in relpaths],
            outputs=replica_partitions(self.cloud, _bucket(self.bucket), relpaths, self.conn_id),
        )

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage:
        """As on start: every partition is in place once the task succeeded (copied or already equal)."""
        return self.get_openlineage_facets_on_start()

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage:
        """As on start: what the failed copy was writing (some objects may have landed)."""
        return self.get_openlineage_facets_on_start()


class VerifyReplicasOperator(BaseOperator):
    """
    Re-read every cloud's manifest and objects of an hour and compare SHA-256 checksums of the bytes.

    A missing or corrupted replica is repaired from the local lake (when its file matches) or from a
    cloud whose copy verifies. The task then **fails** naming each cloud and object that differed, so a
    silent corruption never goes unnoticed; the repairs are in the log and XCom, and a re-run passes.

    :param hour: start of the hour, ISO 8601. (templated)
    :param lake_root: the primary lake, a directory or ``s3://bucket/prefix``; checked as one store among
        the clouds. (templated)
    :param clouds: clouds to check, default all three (the one holding the primary lake is left out).
    :param conn_ids: optional ``{cloud: conn_id}`` overrides.
    :param bucket: bucket or container; default ``$REPLICA_BUCKET``. (templated)
    :param repair: repair what can be repaired (default True).
    :param pipeline: whose hour; default ``customer_enrichment``.
    :return: ``VerifyReport.to_dict()`` (also pushed as XCom ``report`` when the task fails): hour,
        reference, clouds, objects_checked, problems / repaired / unrepaired (each
        ``{cloud, object, problem, source}``).
    """

    template_fields: Sequence[str] = ("hour", "lake_root", "bucket")
    ui_color = "#c9f2d0"

    def __init__(
        self,
        *,
        hour: str,
        lake_root: str,
        clouds: Sequence[str] = ("s3", "gcs", "azure"),
        conn_ids: dict[str, str] | None = None,
        bucket: str | None = None,
        repair: bool = True,
        pipeline: str = "customer_enrichment",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hour = hour
        self.lake_root = lake_root
        self.clouds = list(clouds)
        self.conn_ids = conn_ids or {}
        self.bucket = bucket
        self.repair = repair
        self.pipeline = pipeline
        self._report: VerifyReport | None = None

    def execute(self, context: Context) -> dict:
        from include.errors import ReplicaCheckFailedError
        from include.replication import verify_hour
        from tricloud.assets import describe_outlets
        from tricloud.lake import lake
        from tricloud.replication.stores import make_store

        bucket = _bucket(self.bucket)
        clouds = _replica_clouds(self.clouds, self.lake_root)
        stores = [make_store(c, bucket, self.conn_ids.get(c)) for c in clouds]
        report = verify_hour(stores, lake(self.lake_root), self.hour, repair=self.repair, pipeline=self.pipeline)
        self._report = report  # for the lineage of its repairs, also when it fails below
        for fix in report.repaired:
            self.log.warning("Repaired %s %s (%s) from %s", fix.cloud, fix.object, fix.problem, fix.source)
        if report.problems:
            context["ti"].xcom_push(key="report", value=report.to_dict())
            lines = [f"{p.cloud}: {p.object} ({p.problem})" for p in report.problems]
            state = "unrepaired" if report.unrepaired else "all repaired"
            raise ReplicaCheckFailedError(
                f"{len(lines)} replica problem(s) for hour {report.hour} ({state}):\n  " + "\n  ".join(lines)
            )
        self.log.info("All %d objects verified in %s", report.objects_checked, ", ".join(report.clouds))
        describe_outlets(context, hour=report.hour)  # a consumer learns which hour is safe everywhere
        return report.to_dict()

    # -- OpenLineage (called by the provider's listener only when lineage is on) -----------------
    def _replicas(self) -> dict[str, list]:
        from tricloud.lineage import replica_partitions

        relpaths = _hour_relpaths(self.hour, self.pipeline)
        bucket = _bucket(self.bucket)
        return {
            c: replica_partitions(c, bucket, relpaths, self.conn_ids.get(c))
            for c in _replica_clouds(self.clouds, self.lake_root)
        }

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Every cloud's copy of the hour's partitions in (read back and compared); nothing out yet."""
        from tricloud.lineage import lineage

        return lineage(inputs=[d for ds in self._replicas().values() for d in ds])

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage:
        """As on start, plus the partitions it repaired as outputs (a repair rewrites objects)."""
        from tricloud.lineage import lineage

        replicas = self._replicas()
        report = self._report
        repaired = []
        for fix in report.repaired if report is not None else ():
            repaired.extend(d for d in replicas.get(fix.cloud, []) if fix.object.startswith(d.name + "/"))
        return lineage(inputs=[d for ds in replicas.values() for d in ds], outputs=repaired)

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage:
        """As on complete: a failed verify may still have repaired copies."""
        return self.get_openlineage_facets_on_complete(task_instance)


class RestoreLakeOperator(BaseOperator):
    """
    Rebuild hours from one surviving cloud into the local lake or into another cloud.

    Every object is checked against the source's manifest before it is published; a cloud target gets
    its manifest last. Returns the hours restored and the bytes.

    :param source: cloud to read from (``s3``, ``gcs``, ``azure``). (templated)
    :param target: ``local`` (the primary lake at ``lake_root``, a directory or ``s3://…``) or a cloud
        name, different from ``source``. (templated)
    :param start: first hour (inclusive), ISO 8601. (templated)
    :param end: last hour (inclusive), ISO 8601. (templated)
    :param lake_root: the primary lake (for ``target="local"``). (templated)
    :param bucket: bucket or container; default ``$REPLICA_BUCKET``. (templated)
    :param pipeline: whose hours; default ``customer_enrichment``.
    :return: ``{"hours": n, "bytes_restored": n, "details": [Restored.to_dict(), …]}``.
    """

    template_fields: Sequence[str] = ("source", "target", "start", "end", "lake_root", "bucket")

    def __init__(
        self,
        *,
        source: str,
        target: str,
        start: str,
        end: str,
        lake_root: str,
        bucket: str | None = None,
        pipeline: str = "customer_enrichment",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.target = target
        self.start = start
        self.end = end
        self.lake_root = lake_root
        self.bucket = bucket
        self.pipeline = pipeline

    def execute(self, context: Context) -> dict:
        from include import lake
        from include.replication import list_hours, restore_hour
        from tricloud.lake import lake as open_lake
        from tricloud.replication.stores import STORES, make_store

        if self.source not in STORES:
            raise ValueError(f"source must be one of {sorted(STORES)}, got {self.source!r}")
        if self.target != "local" and self.target not in STORES:
            raise ValueError(f"target must be 'local' or one of {sorted(STORES)}, got {self.target!r}")
        if self.target == self.source:
            raise ValueError(f"target and source are both {self.source!r}: restore into another place")
        start, end = lake.parse_hour(self.start), lake.parse_hour(self.end)
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        bucket = _bucket(self.bucket)
        source = make_store(self.source, bucket)
        target = None if self.target == "local" else make_store(self.target, bucket)
        hours = list_hours(source, start, end + lake.HOUR, self.pipeline)
        if not hours:
            raise ValueError(f"{self.source} holds no hour between {start} and {end}: nothing to restore")
        others = [make_store(c, bucket) for c in STORES if c not in (self.source, self.target)]
        primary = open_lake(self.lake_root) if target is None else None
        results = []
        for hour in hours:
            res = restore_hour(source, hour, lake_root=primary, target=target, others=others, pipeline=self.pipeline)
            self.log.info(
                "Restored %s: %d objects, %d bytes from %s", hour, res.objects, res.bytes_restored, self.source
            )
            results.append(res)
        total = sum(r.bytes_restored for r in results)
        self.log.info("Restored %d hour(s), %d bytes, from %s into %s", len(results), total, self.source, self.target)
        return {"hours": len(results), "bytes_restored": total, "details": [r.to_dict() for r in results]}


class ReplicatePathOperator(BaseOperator):
    """
    Copy a whole, non-hourly lake directory (e.g. ``athletes/mean_age_by_year``) to one cloud, the same way
    as hours: by SHA-256, only what changed, stale objects removed, manifest
    ``_manifests/datasets/<path>.json`` last.

    :param cloud: ``s3``, ``gcs`` or ``azure``.
    :param path: directory relative to the lake root. (templated)
    :param lake_root: the local lake. (templated)
    :param conn_id: connection id; default per cloud. (templated)
    :param bucket: bucket or container; default ``$REPLICA_BUCKET``. (templated)
    """

    template_fields: Sequence[str] = ("path", "lake_root", "conn_id", "bucket")
    ui_color = "#d6eaff"

    def __init__(
        self,
        *,
        cloud: str,
        path: str,
        lake_root: str,
        conn_id: str | None = None,
        bucket: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloud = cloud
        self.path = path
        self.lake_root = lake_root
        self.conn_id = conn_id
        self.bucket = bucket

    def execute(self, context: Context) -> dict:
        from include.replication import replicate_dataset
        from tricloud.replication.stores import make_store

        store = make_store(self.cloud, _bucket(self.bucket), self.conn_id)
        result = replicate_dataset(store, self.lake_root, self.path)
        self.log.info(
            "%s://%s/%s: %d objects, %d uploaded, %d bytes",
            self.cloud,
            store.bucket,
            self.path,
            result.objects,
            result.uploaded,
            result.bytes_uploaded,
        )
        return result.to_dict()
