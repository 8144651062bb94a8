"""
### check_connections — does every configured connection work?

Manual. One task per connection the pipelines use (`spark_default`, `aws_default`,
`google_cloud_default`, `wasb_default`, `warehouse_default`): each connects for real (the Spark master's
port, a listing of the replica bucket/container, `SELECT 1` on the warehouse) and fails naming the
`AIRFLOW_CONN_*` variable to fix. Run it after changing `.env`, e.g. when pointing at real clouds:
`airflow dags trigger check_connections`.

Each task logs the connection it checks; passwords and keys appear as `***` (Airflow's secrets
masker, which treats `password` and extras such as `connection_string` as sensitive).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from tricloud.health import CONNECTIONS
from tricloud.task_defaults import check_default_args


@dag(
    dag_id="check_connections",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["ops", "connections"],
    # No retry: the verdict at once; a failed check alerts, naming the connection and the variable to fix.
    default_args=check_default_args(),
)
def check_connections():
    for conn_id, kind in CONNECTIONS.items():

        @task(task_id=f"check_{conn_id}")
        def check(conn_id: str = conn_id, kind: str = kind) -> dict:
            from tricloud.health import check_connection

            return check_connection(conn_id, kind)

        check()


check_connections()
