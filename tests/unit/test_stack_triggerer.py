"""The embedded stack starts a triggerer only when something can defer (issue 16 §5, stack memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import config
from stack.airflow import airflow_processes, wants_triggerer


def names(env: dict[str, str]) -> list[str]:
    return [p.name for p in airflow_processes(env, Path("/nowhere"), 8080)]


class TestTriggerer:
    def test_unset_starts_it_like_airflow_standalone(self):
        assert "triggerer" in names({})

    def test_the_stacks_setting_leaves_it_out_when_nothing_defers(self):
        env = {"TRICLOUD_TRIGGERER": config.LEAN_SETTINGS["TRICLOUD_TRIGGERER"]}
        assert names(env) == ["api-server", "scheduler", "dag-processor"]

    def test_auto_starts_it_when_tasks_defer_by_default(self):
        env = {"TRICLOUD_TRIGGERER": "auto", "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
        assert "triggerer" in names(env)

    @pytest.mark.parametrize(("value", "expected"), [("on", True), ("off", False), (" OFF ", False)])
    def test_on_and_off_are_obeyed(self, value, expected):
        assert (
            wants_triggerer({"TRICLOUD_TRIGGERER": value, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true"}) is expected
        )

    def test_a_typo_fails_naming_the_values(self):
        with pytest.raises(ValueError, match="TRICLOUD_TRIGGERER='of'.*on .*off.*auto"):
            wants_triggerer({"TRICLOUD_TRIGGERER": "of"})

    def test_stop_reaches_a_triggerer_started_before_it_was_turned_off(self, tmp_path):
        from stack.airflow import LocalAirflow

        airflow = LocalAirflow({"AIRFLOW_HOME": str(tmp_path), "TRICLOUD_TRIGGERER": "off"})
        assert "triggerer" not in [p.name for p in airflow.processes]
        assert "triggerer" in [p.name for p in airflow._stoppable]

    def test_a_typo_never_keeps_a_running_airflow_from_stopping(self, tmp_path):
        """`make stop` with TRICLOUD_TRIGGERER mistyped stops the scheduler that runs (a stand-in process)."""
        import subprocess

        from include.processes import alive, write_pid
        from stack.airflow import LocalAirflow

        scheduler = subprocess.Popen(["sleep", "300"], start_new_session=True)
        try:
            write_pid(tmp_path / "scheduler" / "scheduler.pid", scheduler.pid)
            airflow = LocalAirflow({"AIRFLOW_HOME": str(tmp_path), "TRICLOUD_TRIGGERER": "of"})
            assert airflow.stop(timeout=5) is True
            scheduler.wait(timeout=5)
            assert not alive(scheduler.pid)
            with pytest.raises(ValueError, match="TRICLOUD_TRIGGERER='of'"):
                airflow.start()
        finally:
            scheduler.kill()
            scheduler.wait()


class TestMemoryReportGroups:
    def test_a_connect_jobs_python_driver_is_a_spark_driver_not_the_scheduler(self):
        from bench.stack_memory import group_of

        cmd = "/v/bin/python -m tricloud.cluster.local_driver /tmp/x/spark/jobs/tricloud-ingest_customers"
        assert group_of(cmd, "Airflow scheduler") == "Spark drivers (Python)"

    def test_a_jvms_command_drops_its_classpath(self):
        from bench.stack_memory import short_command

        cmd = "/usr/bin/java -cp /a.jar:/b.jar -Xmx512m org.apache.spark.deploy.master.Master --port 1"
        assert short_command(cmd) == "java -Xmx512m org.apache.spark.deploy.master.Master --port 1"


def test_the_production_topology_keeps_its_triggerer_over_the_stacks_lean_setting(tmp_path):
    """Review finding: Topology.env() builds on the stack env, whose TRICLOUD_TRIGGERER=auto dropped the
    triggerer that docker-compose and the production topology keep for deferring cloud backends."""
    from stack.prod import Topology

    base = {**config.LEAN_SETTINGS, "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2"}
    topology = Topology(tmp_path, base, 5432, 6379, 8080, 8793)
    assert "triggerer" in [p.name for p in topology.processes(topology.env())]
