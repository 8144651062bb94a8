"""Every DAG file imports cleanly, imports nothing heavy, and declares what operators of this platform rely on.

What parsing costs in seconds is a benchmark (``python -m bench.dag_parse``), not a test: a loaded machine
makes a slow figure there, not a red test. Here: what parsing imports, which is what makes it slow.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from tests.support.enrichment_tasks import WRITERS

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))

EXPECTED_EDGES = {
    "athlete_age_by_year": {
        "start_cluster": {"ensure_input", "stop_cluster"},
        "ensure_input": {"mean_age_by_year"},
        "mean_age_by_year": {"stop_cluster", "replicate_to_s3", "replicate_to_gcs", "replicate_to_azure"},
        "replicate_to_s3": set(),
        "replicate_to_gcs": set(),
        "replicate_to_azure": set(),
        "stop_cluster": set(),
    },
    "restore_lake": {"restore": set()},
    "customer_daily_report": {"daily_rollup": set()},
    "check_connections": {
        "check_spark_default": set(),
        "check_aws_default": set(),
        "check_google_cloud_default": set(),
        "check_wasb_default": set(),
        "check_warehouse_default": set(),
    },
    "customer_enrichment": {
        "claim_hour": {"start_cluster", "release_hour"},
        "start_cluster": {"ingest_customer_data", "ingest_product_data", "stop_cluster"},
        "ingest_customer_data": {"enrich_customer_data"},
        "ingest_product_data": {"enrich_customer_data"},
        "enrich_customer_data": {"stop_cluster", "check_quality"},
        # the gate: nothing of the hour reaches a cloud or the warehouse unless it passed
        "check_quality": {"replicate_to_s3", "replicate_to_gcs", "replicate_to_azure", "load_warehouse"},
        "load_warehouse": {"check_warehouse_columns", "check_warehouse_table"},
        "check_warehouse_columns": {"release_hour"},
        "check_warehouse_table": {"release_hour"},
        "replicate_to_s3": {"verify_replicas"},
        "replicate_to_gcs": {"verify_replicas"},
        "replicate_to_azure": {"verify_replicas"},
        "verify_replicas": {"release_hour", "revise_daily_report"},
        "revise_daily_report": set(),
        "stop_cluster": {"release_hour"},
        "release_hour": set(),
    },
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(EXPECTED_EDGES) <= set(dagbag.dags)


# Every task process parses its DAG file first, so what a DAG file imports is paid by every task.
# An Asset URI with a provider-registered scheme loads every provider's asset module (boto3, the GCS
# client: ~1.1 s per task); custom schemes must start with "x-".
HEAVY_MODULES = (
    "boto3",
    "google.cloud.storage",
    "azure.storage.blob",
    "pyspark",
    "duckdb",
    "pandas",
    "dask",
    "openlineage",  # the lineage facet methods import it only when the provider calls them
)


#: Tasks whose failure no retry can change: verify_replicas fails on purpose, once, when it repaired
#: something; a failed quality gate is the data's fault (the same data fails the same way).
# The gate and verify_replicas retry I/O errors; their verdicts fail at try 1 by the retry policy (include/errors.py).
NEVER_RETRIED = {"check_warehouse_columns", "check_warehouse_table"}
#: DAGs whose tasks are never retried: a connection check's verdict comes at once (tricloud.task_defaults).
NEVER_RETRIED_DAGS = {"check_connections"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_loads_no_cloud_sdk_or_engine(path):
    import subprocess
    import sys

    probe = (
        f"import runpy, sys; runpy.run_path({str(path)!r}); "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"{path.name} imports {out.stdout.strip()}"


def test_every_dag_has_owner_retries_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        for task in dag.tasks:
            assert task.owner not in (None, "", "airflow"), f"{dag_id}.{task.task_id}"
            if task.task_id not in NEVER_RETRIED and dag_id not in NEVER_RETRIED_DAGS:
                assert task.retries >= 2, f"{dag_id}.{task.task_id}"
            else:
                assert task.retries == 0, f"{dag_id}.{task.task_id}"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_EDGES))
def test_structure(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    edges = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert edges == EXPECTED_EDGES[dag_id]


def test_stop_cluster_is_the_teardown_of_start_cluster(dagbag):
    dag = dagbag.dags["customer_enrichment"]
    assert dag.get_task("stop_cluster").is_teardown
    assert dag.get_task("start_cluster").is_setup


class TestOneWriterPerHour:
    """customer_enrichment claims its hour first, frees it whatever happened, and fences every writer."""

    WRITERS = WRITERS  # tests/support/enrichment_tasks.py (check_quality writes its verdict next to the hour)

    def test_claim_is_a_setup_waiting_without_a_worker_slot_and_release_its_teardown(self, dagbag):
        dag = dagbag.dags["customer_enrichment"]
        claim, release = dag.get_task("claim_hour"), dag.get_task("release_hour")
        assert claim.is_setup and claim.mode == "reschedule"
        assert release.is_teardown and claim.task_id in release.upstream_task_ids
        assert [t.task_id for t in dag.roots] == ["claim_hour"]
        # Every task but the claim runs after it (so nothing is written before the hour is held) ...
        assert {t.task_id for t in claim.get_flat_relatives(upstream=False)} == set(dag.task_ids) - {"claim_hour"}
        # ... and the release after every writer.
        assert set(self.WRITERS) <= {t.task_id for t in release.get_flat_relatives(upstream=True)}

    def test_every_writer_checks_the_lease_before_it_writes(self, dagbag):
        from tricloud.hour_lease import fence

        dag = dagbag.dags["customer_enrichment"]
        for task_id in self.WRITERS:
            assert dag.get_task(task_id)._pre_execute_hook is fence, task_id

    def test_cluster_tasks_renew_the_lease_without_failing(self, dagbag):
        from tricloud.hour_lease import keep_alive

        dag = dagbag.dags["customer_enrichment"]
        for task_id in ("start_cluster", "stop_cluster"):
            assert dag.get_task(task_id)._pre_execute_hook is keep_alive, task_id

    def test_lease_args_render_without_a_claim_so_fence_reports_it(self, dagbag):
        class TI:
            task_id, try_number = "ingest_customer_data", 2

            def __init__(self, claim):
                self.claim = claim

            def xcom_pull(self, task_ids):
                return self.claim

        dag = dagbag.dags["customer_enrichment"]
        task = dag.get_task("ingest_customer_data")
        lease_args = task.application_args[task.application_args.index("--lease-pipeline") :]
        env = dag.get_template_env()
        claim = {"pipeline": "customer_enrichment", "generation": 3}
        assert task.render_template(lease_args, {"ti": TI(claim)}, env) == [
            "--lease-pipeline", "customer_enrichment", "--lease-generation", "3",
            "--lease-attempt", "ingest_customer_data:2",
        ]  # fmt: skip
        assert task.render_template(lease_args, {"ti": TI(None)}, env)[:4] == [
            "--lease-pipeline", "", "--lease-generation", "",
        ]  # fmt: skip

    def test_spark_jobs_get_the_lease_to_check_before_publishing(self, dagbag):
        dag = dagbag.dags["customer_enrichment"]
        for task_id in ("ingest_customer_data", "ingest_product_data"):
            args = dag.get_task(task_id).application_args
            assert "--lease-generation" in args and "--lease-pipeline" in args, task_id


def core_timetable(dag):
    # The scheduler works on the core timetable the SDK declaration is converted to.
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(dag.timetable)


class TestHourlyInterval:
    """The data interval an hourly run really gets: exactly one hour [start, end)."""

    def test_scheduled_run_covers_one_hour(self, dagbag):
        from airflow.timetables.base import DataInterval, TimeRestriction

        timetable = core_timetable(dagbag.dags["customer_enrichment"])
        assert timetable.summary == "0 * * * *"
        last = DataInterval(pendulum.datetime(2026, 11, 24, 9, tz="UTC"), pendulum.datetime(2026, 11, 24, 10, tz="UTC"))
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last,
            restriction=TimeRestriction(earliest=pendulum.datetime(2026, 1, 1, tz="UTC"), latest=None, catchup=True),
        )
        assert info.data_interval.start == pendulum.datetime(2026, 11, 24, 10, tz="UTC")
        assert info.data_interval.end - info.data_interval.start == timedelta(hours=1)
        assert info.run_after == info.data_interval.end

    def test_manual_run_covers_the_hour_ending_at_its_logical_date(self, dagbag):
        timetable = core_timetable(dagbag.dags["customer_enrichment"])
        interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 24, 11, tz="UTC"))
        assert (interval.start, interval.end) == (
            pendulum.datetime(2026, 11, 24, 10, tz="UTC"),
            pendulum.datetime(2026, 11, 24, 11, tz="UTC"),
        )


class TestUIFacingDeclarations:
    """What the web UI shows: assets, validated trigger forms, extra links (from the serialized DAG)."""

    def test_outputs_are_assets_and_the_report_is_scheduled_on_data(self, dagbag):
        from tricloud import assets

        dag = dagbag.dags["customer_enrichment"]
        # Emitted by the gate, so a gated-out hour triggers no consumer.
        assert dag.get_task("check_quality").outlets == [assets.ENRICHED_CUSTOMER_HOURLY]
        assert dag.get_task("enrich_customer_data").outlets == []
        assert dag.get_task("verify_replicas").outlets == [assets.REPLICATED_CUSTOMER_HOURLY]
        assert dagbag.dags["athlete_age_by_year"].get_task("mean_age_by_year").outlets == [assets.ATHLETE_MEAN_AGE]
        assert dag.get_task("revise_daily_report").outlets == [assets.REVISED_CUSTOMER_HOURLY]
        report = dagbag.dags["customer_daily_report"]
        assert list(report.timetable.asset_condition.objects) == [
            assets.REPLICATED_CUSTOMER_HOURLY,
            assets.REVISED_CUSTOMER_HOURLY,
        ]

    @pytest.mark.parametrize(
        ("dag_id", "conf", "ok"),
        [
            ("customer_enrichment", {}, True),
            ("customer_enrichment", {"hour": "2026-11-24T10:00:00+00:00"}, True),
            ("customer_enrichment", {"hour": "2026-11-24T10:30:00+00:00"}, False),
            ("customer_enrichment", {"hour": "yesterday"}, False),
            ("customer_daily_report", {"date": "2026-11-24"}, True),
            ("customer_daily_report", {"date": "24/11/2026"}, False),
            (
                "restore_lake",
                {
                    "source": "s3",
                    "target": "local",
                    "start_hour": "2026-11-24T00:00:00+00:00",
                    "end_hour": "2026-11-24T01:00:00+00:00",
                },
                True,
            ),
            (
                "restore_lake",
                {
                    "source": "dropbox",
                    "target": "local",
                    "start_hour": "2026-11-24T00:00:00+00:00",
                    "end_hour": "2026-11-24T01:00:00+00:00",
                },
                False,
            ),
        ],
    )
    def test_trigger_params_are_validated(self, dagbag, dag_id, conf, ok):
        from airflow.sdk.exceptions import ParamValidationError

        def validate():
            params = copy.deepcopy(dagbag.dags[dag_id].params)
            params.update(conf)
            params.validate()

        if ok:
            validate()
        else:
            with pytest.raises(ParamValidationError):
                validate()

    def test_spark_tasks_carry_extra_links_in_the_serialized_dag(self, dagbag):
        from airflow.serialization.serialized_objects import DagSerialization

        # What the API server sees: the DAG after a round trip through serialization.
        dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["customer_enrichment"]))
        links = {t.task_id: sorted(t.extra_links) for t in dag.tasks if t.extra_links}
        assert links == {
            "start_cluster": ["Cluster console", "Spark master UI"],
            "ingest_customer_data": [
                "Cluster console",
                "Driver log",
                "Job page",
                "Spark application",
                "Spark master UI",
            ],
            "ingest_product_data": [
                "Cluster console",
                "Driver log",
                "Job page",
                "Spark application",
                "Spark master UI",
            ],
        }


#: The pipelines' DAGs: every task follows the shared retry policy and alerts on its final failure.
ALERTED_DAGS = ("customer_enrichment", "athlete_age_by_year", "customer_daily_report")


@pytest.mark.parametrize("dag_id", ALERTED_DAGS)
def test_every_task_has_the_shared_retry_policy_and_the_failure_alert(dagbag, dag_id):
    from tricloud.alerts import FailureAlert
    from tricloud.retries import RETRY_POLICY

    tasks = dagbag.dags[dag_id].tasks
    assert [t.task_id for t in tasks if t.retry_policy is not RETRY_POLICY] == []
    assert [t.task_id for t in tasks if not any(isinstance(c, FailureAlert) for c in t.on_failure_callback or [])] == []
    # Only the hourly DAG's alerts name an hour; the daily report and the athlete DAG have no hourly
    # interval, so theirs name the run (an "hour" there was the last complete hour: meaningless).
    hourly = {a.hourly for t in tasks for a in t.on_failure_callback or [] if isinstance(a, FailureAlert)}
    assert hourly == {dag_id == "customer_enrichment"}


@pytest.mark.parametrize(("dag_id", "retries", "policy"), [("restore_lake", 2, True), ("check_connections", 0, False)])
def test_the_manual_dags_alert_on_failure_naming_the_run(dagbag, dag_id, retries, policy):
    """restore_lake retries transient cloud errors (the shared policy) and alerts; check_connections does
    not retry (its verdict at once) and alerts. Both alerts name the run: these DAGs process no one hour."""
    from tricloud.alerts import FailureAlert
    from tricloud.retries import RETRY_POLICY

    for task in dagbag.dags[dag_id].tasks:
        assert task.retries == retries, task.task_id
        assert (task.retry_policy is RETRY_POLICY) is policy, task.task_id
        alerts = [c for c in task.on_failure_callback or [] if isinstance(c, FailureAlert)]
        assert [a.hourly for a in alerts] == [False], task.task_id
