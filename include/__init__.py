"""Non-Airflow code: Spark jobs, enrichment, lake layout and data generators.

Nothing in this package imports Airflow, so every piece runs unchanged under spark-submit,
in a notebook or in a plain pytest.
"""
