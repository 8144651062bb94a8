"""One attempt of a task as the Task SDK runs it, reduced to what SparkJobOperator reads from its context.

``task_state_store`` is kept in a JSON file so that it outlives a killed attempt (the Task SDK keeps it
in the metadata DB, across tries). ``python -m tests.support.task_attempt STORE TRY`` runs one attempt
of the ``ingest_customer_data`` job in a process of its own, so a test can SIGKILL it mid-job.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DAG_ID = "customer_enrichment"
TASK_ID = "ingest_customer_data"
RUN_ID = "scheduled__2026-11-24T11:00:00+00:00"
HOUR, HOUR_END = "2026-11-24T10:00:00+00:00", "2026-11-24T11:00:00+00:00"


class FileStateStore:
    """``task_state_store`` (``get`` / ``set`` / ``delete``, as the Task SDK's accessor) in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _data(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str):
        return self._data().get(key)

    def set(self, key: str, value) -> None:
        self.path.write_text(json.dumps({**self._data(), key: value}))

    def delete(self, key: str) -> None:
        self.path.write_text(json.dumps({k: v for k, v in self._data().items() if k != key}))


@dataclass
class TaskInstance:
    """The task instance fields the operator and ResumableJobMixin read."""

    try_number: int = 1
    dag_id: str = DAG_ID
    task_id: str = TASK_ID
    map_index: int = -1
    stats_tags: dict = field(default_factory=dict)


def context(store: Path, try_number: int) -> dict:
    return {"ti": TaskInstance(try_number=try_number), "run_id": RUN_ID, "task_state_store": FileStateStore(store)}


def operator(**kwargs):
    from tricloud import settings
    from tricloud.operators import SparkJobOperator

    return SparkJobOperator(
        task_id=TASK_ID,
        name="ingest_customers",
        application=settings.job_path("ingest_customers"),
        application_args=["--start", HOUR, "--end", HOUR_END],
        poll_interval=0.2,
        **kwargs,
    )


if __name__ == "__main__":
    store, try_number = Path(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(operator().execute(context(store, try_number))))
