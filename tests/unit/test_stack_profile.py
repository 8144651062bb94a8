"""The demo's phase clock, the stack's lean settings and the hour-profile benchmark's arithmetic (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.hour_timeline import depths, stage_rows, task_timings
from bench.stack_memory import group_of
from stack import config
from stack.clock import PhaseClock

# customer_enrichment's edges (tests/dags/test_dag_integrity.py holds the authoritative copy).
EDGES = {
    "claim_hour": ["start_cluster"],
    "start_cluster": ["ingest_customer_data", "ingest_product_data", "stop_cluster"],
    "ingest_customer_data": ["enrich_customer_data"],
    "ingest_product_data": ["enrich_customer_data"],
    "enrich_customer_data": ["stop_cluster", "replicate_to_s3", "load_warehouse"],
    "replicate_to_s3": ["verify_replicas"],
    "load_warehouse": ["release_hour"],
    "stop_cluster": ["release_hour"],
    "verify_replicas": ["release_hour"],
    "release_hour": [],
}


def _ti(task_id: str, queued: str, start: str, end: str) -> dict:
    day = "2026-02-01T10:00:"
    return {
        "task_id": task_id,
        "state": "success",
        "queued_when": day + queued + "Z",
        "start_date": day + start + "Z",
        "end_date": day + end + "Z",
    }


class TestPhaseClock:
    def test_phases_from_the_makefile_are_kept_and_counted_in_the_total(self):
        clock = PhaseClock.from_env("install (venv ∥ npm):1000.0:1012.5,java:1012.5:1013.0")
        assert clock.phases == [("install (venv ∥ npm)", 12.5), ("java", 0.5)]
        assert clock.started == 1000.0
        table = clock.table()
        assert "install (venv ∥ npm)    12.5 s" in table
        assert table.splitlines()[-1].split()[0] == "total"

    def test_unset_means_no_phases(self):
        assert PhaseClock.from_env(None).phases == []
        assert PhaseClock.from_env("").phases == []

    def test_a_malformed_entry_names_itself(self):
        with pytest.raises(ValueError, match="'install:soon:later' is not name:start:end"):
            PhaseClock.from_env("install:soon:later")

    def test_phase_records_even_when_the_block_raises(self):
        clock = PhaseClock()
        with pytest.raises(RuntimeError), clock.phase("the hour"):
            raise RuntimeError("run failed")
        assert [n for n, _ in clock.phases] == ["the hour"]


class TestLeanSettings:
    def _derived(self, values: dict[str, str]) -> dict[str, str]:
        return config.derived_settings(
            values, home=Path("/h"), state=Path("/s"), lake=Path("/l"), jwt_secret="j", fernet_key="f"
        )

    def test_every_stack_gets_them(self):
        derived = self._derived({})
        for key, value in config.LEAN_SETTINGS.items():
            assert derived[key] == value

    def test_a_value_from_env_wins(self):
        derived = self._derived({"SPARK_DAEMON_MEMORY": "1g"})
        assert "SPARK_DAEMON_MEMORY" not in derived  # the .env value is the one the stack passes on

    def test_no_heap_cap_in_java_options(self):
        # Spark refuses -Xmx in java options (the memory settings set it); -Xms is allowed.
        for key in ("SPARK_DAEMON_JAVA_OPTS", "SPARK_SUBMIT_OPTS"):
            assert "-Xmx" not in config.LEAN_SETTINGS[key]


class TestHourTimeline:
    def test_stages_are_depths(self):
        d = depths(EDGES)
        assert d["claim_hour"] == 0
        assert d["start_cluster"] == 1
        assert d["ingest_customer_data"] == d["ingest_product_data"] == 2
        assert d["enrich_customer_data"] == 3
        assert d["replicate_to_s3"] == d["load_warehouse"] == d["stop_cluster"] == 4
        assert d["verify_replicas"] == 5
        assert d["release_hour"] == 6

    def test_gaps_and_runtimes_from_the_records(self):
        edges = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
        tis = [
            _ti("a", "00.5", "02.0", "05.0"),
            _ti("b", "06.0", "07.5", "17.5"),
            _ti("c", "06.0", "08.0", "12.0"),
            _ti("d", "18.0", "20.0", "21.0"),
        ]
        run = {"start_date": "2026-02-01T10:00:00Z"}
        by_id = {t.task_id: t for t in task_timings(tis, edges, run)}
        assert (by_id["a"].scheduler_s, by_id["a"].start_s, by_id["a"].run_s) == (0.5, 1.5, 3.0)
        assert (by_id["b"].scheduler_s, by_id["b"].start_s, by_id["b"].run_s) == (1.0, 1.5, 10.0)
        # d waits for the later of its two upstream tasks (b ends at 17.5)
        assert (by_id["d"].scheduler_s, by_id["d"].start_s) == (0.5, 2.0)
        stages = stage_rows(list(by_id.values()))
        assert [s["tasks"] for s in stages] == [["a"], ["b", "c"], ["d"]]
        assert [s["wait_s"] for s in stages] == [2.0, 2.5, 2.5]
        assert [s["run_s"] for s in stages] == [3.0, 10.0, 1.0]
        # waits + runs = the run's critical path: 0 → 21 s
        assert sum(s["wait_s"] + s["run_s"] for s in stages) == 21.0

    def test_an_unfinished_task_is_named(self):
        ti = _ti("a", "00.5", "02.0", "05.0") | {"end_date": None, "state": "running"}
        with pytest.raises(ValueError, match="task a has no queued/start/end time: running"):
            task_timings([ti], {"a": []}, {"start_date": "2026-02-01T10:00:00Z"})


class TestMemoryGroups:
    @pytest.mark.parametrize(
        ("cmdline", "group"),
        [
            ("java -cp x org.apache.spark.deploy.master.Master --host 127.0.0.1", "Spark master"),
            ("java -cp x org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077", "Spark worker"),
            (
                "java -Xmx768m org.apache.spark.executor.CoarseGrainedExecutorBackend --driver-url",
                "Spark executors (JVM)",
            ),
            ("python -m pyspark.daemon", "Spark executors (Python workers)"),
            ("java org.apache.spark.deploy.SparkSubmit /w/include/jobs/ingest_customers.py", "Spark drivers (JVM)"),
            ("/v/bin/python /w/include/jobs/ingest_customers.py --lake-root /l", "Spark drivers (Python)"),
            ("airflow worker -- 0199-ti-uuid", "Airflow task processes"),
            ("airflow executor -- LocalExecutor <idle>", "Airflow executor workers / supervisors"),
            ("/v/bin/python /v/bin/airflow api-server --host 127.0.0.1", "Airflow api-server"),
            ("/v/bin/python /v/bin/airflow scheduler --skip-serve-logs", "Airflow scheduler"),
            ("/v/bin/python /v/bin/airflow dag-processor", "Airflow dag-processor"),
            ("/v/bin/python /v/bin/airflow triggerer --skip-serve-logs", "Airflow triggerer"),
            ("/v/bin/python /v/bin/moto_server -H 127.0.0.1 -p 4566", "moto (S3 emulator)"),
            ("node /w/stack/node_modules/.bin/azurite-blob --blobHost 127.0.0.1", "Azurite (Azure emulator)"),
        ],
    )
    def test_group_from_command_line(self, cmdline, group):
        assert group_of(cmdline, "other") == group

    def test_unknown_child_counts_with_its_root(self):
        assert group_of("/bin/sh -c something", "Airflow scheduler") == "Airflow scheduler"
