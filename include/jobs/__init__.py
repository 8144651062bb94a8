"""PySpark jobs. Each module: ``transform`` (pure DataFrame -> DataFrames) plus a thin ``main(argv)``.

No Airflow imports here: spark-submit runs these files directly.
"""
