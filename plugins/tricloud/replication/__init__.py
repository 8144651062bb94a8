"""The Airflow side of replication: provider hooks wrapped into ``include.replication.ObjectStore``."""
