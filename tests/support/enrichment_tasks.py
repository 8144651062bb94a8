"""The tasks of ``customer_enrichment`` that read or write data, written once for every test that lists them.

Used by tests/dags/test_dag_integrity.py (every writer is fenced by the hour lease) and
tests/e2e/test_customer_enrichment_dag.py (every data task sends OpenLineage events). The source of truth
is dags/customer_enrichment.py; these tests compare the DAG against this list, so a task added there
without being added here (or the other way round) fails them.
"""

from __future__ import annotations

#: Tasks that move the hour's data: the Spark jobs, enrichment, the three replicas, verification, the warehouse.
DATA_TASKS: tuple[str, ...] = (
    "ingest_customer_data",
    "ingest_product_data",
    "enrich_customer_data",
    "replicate_to_s3",
    "replicate_to_gcs",
    "replicate_to_azure",
    "verify_replicas",
    "load_warehouse",
)

#: Tasks that write under the hour and so must be fenced by its lease: the data tasks, and the quality
#: check (it writes its verdict next to the hour).
WRITERS: tuple[str, ...] = (*DATA_TASKS, "check_quality")
