"""
### restore_lake — rebuild the lake, or a destroyed cloud, from any one surviving copy

Manual only. Reads the hourly manifests of the **source** cloud for every hour in
[`start_hour`, `end_hour`] (inclusive), downloads each object, checks its SHA-256 against the
manifest, and publishes it into the **target**: the local lake (`$LAKE_ROOT`, whole partitions swapped
in atomically) or another cloud (objects first, manifest last). Nothing that fails its checksum is
published. The task returns the hours and bytes restored.

**From the UI:** Trigger DAG → fill the form (source, target, hours) → Trigger.

**From the CLI:**

```bash
airflow dags trigger restore_lake --conf '{"source": "azure", "target": "local",
  "start_hour": "2026-11-24T00:00:00+00:00", "end_hour": "2026-11-24T23:00:00+00:00"}'
```
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from tricloud import macros
from tricloud.operators import RestoreLakeOperator
from tricloud.task_defaults import restore_default_args

CLOUDS = ["s3", "gcs", "azure"]


@dag(
    dag_id="restore_lake",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    user_defined_macros=macros.MACROS,
    doc_md=__doc__,
    tags=["recovery", "replication"],
    # Transient cloud errors retried with backoff, deterministic ones fail at try 1; an alert on failure.
    default_args=restore_default_args(),
    params={
        "source": Param("s3", enum=CLOUDS, description="the surviving cloud to restore from"),
        "target": Param("local", enum=["local", *CLOUDS], description="`local` (the lake) or a cloud to rebuild"),
        "start_hour": Param(
            type="string", format="date-time", description="first hour, e.g. 2026-11-24T00:00:00+00:00"
        ),
        "end_hour": Param(type="string", format="date-time", description="last hour (inclusive)"),
    },
)
def restore_lake():
    RestoreLakeOperator(
        task_id="restore",
        source="{{ params.source }}",
        target="{{ params.target }}",
        start="{{ params.start_hour }}",
        end="{{ params.end_hour }}",
        lake_root=macros.LAKE_ROOT,
    )


restore_lake()
