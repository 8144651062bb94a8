"""PySpark jobs. Each module: ``transform`` (pure DataFrame -> DataFrames) plus a thin ``main(argv)``.

No Airflow imports here: spark-submit runs these files directly.
"""

#: Exit code of a job whose input is unusable for a reason no retry can change (the hour's input is
#: missing, or the whole file has the wrong format): ``EX_DATAERR`` of BSD's sysexits.h. The operator
#: turns it into ``tricloud.operators.spark.SparkJobDataError``, which the Spark tasks' retry policy
#: fails at once. A module constant here (not in ``common``) so the operator can read it without pyspark.
DATA_ERROR_EXIT = 65
