"""The hour's enrichment (DuckDB) and warehouse load, as small operators that report their lineage.

They were ``@task`` functions; they became operators so that, like every other task of
``customer_enrichment``, they describe the datasets they really read and wrote through the
OpenLineage provider's facet methods (docs/design.md "Lineage" says why not inlets/outlets or the hook
lineage collector). ``execute`` does exactly what the functions did, with the same XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


class EnrichHourOperator(BaseOperator):
    """
    Join the hour's clean orders with the catalog and aggregate per customer (DuckDB, include.enrichment).

    Writes ``enriched/customer_hourly/…`` (plus ``_summary.json``) and ``rejects/customer_enrichment/…``,
    then hashes the hour's outputs once so the three replication tasks share one pass.

    :param hour: start of the hour, ISO 8601 (UTC). (templated)
    :param lake_root: the lake, a directory or ``s3://bucket/prefix``. (templated)
    :return: the enrichment summary (``include.enrichment.enrich_hour``).
    """

    template_fields: Sequence[str] = ("hour", "lake_root")
    ui_color = "#fff2cc"

    def __init__(self, *, hour: str, lake_root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hour = hour
        self.lake_root = lake_root

    def execute(self, context: Context) -> dict:
        from include.enrichment import enrich_hour
        from include.replication import hour_digests
        from tricloud.assets import describe_outlets
        from tricloud.lake import lake

        the_lake = lake(self.lake_root)
        summary = enrich_hour(the_lake, self.hour)
        hour_digests(the_lake, self.hour)
        describe_outlets(context, hour=self.hour)
        return summary

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The hour's clean orders and catalog in; its enriched aggregates and enrichment rejects out."""
        from include import lake
        from tricloud.lineage import lake_partitions, lineage

        return lineage(
            inputs=lake_partitions(self.lake_root, (lake.CLEAN_CUSTOMERS, lake.CLEAN_PRODUCTS), self.hour),
            outputs=lake_partitions(self.lake_root, (lake.ENRICHED_CUSTOMERS, lake.REJECTS_ENRICHMENT), self.hour),
        )

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage:
        """As on start (the partitions are fixed by the hour)."""
        return self.get_openlineage_facets_on_start()

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage:
        """As on start: what the failed task was reading and writing."""
        return self.get_openlineage_facets_on_start()


class LoadWarehouseOperator(BaseOperator):
    """
    Upsert the hour's enriched aggregates into table ``customer_hourly`` of a SQL connection.

    Through the connection's own DB-API hook (tricloud.warehouse.load_hour); a re-run replaces the hour.

    :param hour: start of the hour, ISO 8601 (UTC). (templated)
    :param lake_root: the lake, a directory or ``s3://bucket/prefix``. (templated)
    :param conn_id: the warehouse connection (``sqlite``, ``postgres`` or ``mysql``). (templated)
    :return: the load's summary (rows, hour, ``conn_id``, ``conn_type``).
    """

    template_fields: Sequence[str] = ("hour", "lake_root", "conn_id")
    ui_color = "#e1d5f5"

    def __init__(self, *, hour: str, lake_root: str, conn_id: str = "warehouse_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hour = hour
        self.lake_root = lake_root
        self.conn_id = conn_id

    def execute(self, context: Context) -> dict:
        from include import lake
        from tricloud.warehouse import load_hour

        return load_hour(self.conn_id, self.lake_root, lake.parse_hour(self.hour))

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The hour's enriched partition in; the warehouse table (named by the connection) out."""
        from include import lake
        from tricloud.connections import require_connection
        from tricloud.lineage import lake_partitions, lineage, warehouse_table
        from tricloud.warehouse import SUPPORTED

        return lineage(
            inputs=lake_partitions(self.lake_root, (lake.ENRICHED_CUSTOMERS,), self.hour),
            outputs=[warehouse_table(require_connection(self.conn_id, SUPPORTED))],
        )

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage:
        """As on start."""
        return self.get_openlineage_facets_on_start()

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage:
        """As on start: what the failed load was writing."""
        return self.get_openlineage_facets_on_start()
