"""The local backend's choice of how a job runs (issue 16): the mode setting and which jobs have a Connect entry."""

from __future__ import annotations

import pytest

from tricloud import settings
from tricloud.cluster.local_connect import MODE_ENV, submit_mode
from tricloud.cluster.local_jobs import entry_module


class TestMode:
    def test_unset_is_the_default_and_both_values_are_taken(self):
        assert submit_mode({}) == "spark-submit"
        assert submit_mode({MODE_ENV: "connect"}) == "connect"
        assert submit_mode({MODE_ENV: " spark-submit "}) == "spark-submit"

    def test_an_unknown_value_fails_naming_the_setting_and_its_values(self):
        with pytest.raises(ValueError, match=r"TRICLOUD_SPARK_SUBMIT_MODE='conect'.*connect"):
            submit_mode({MODE_ENV: "conect"})


class TestEntryModule:
    def test_the_hourly_jobs_have_a_run_entry(self):
        assert entry_module(settings.job_path("ingest_customers")) == "include.jobs.ingest_customers"
        assert entry_module(settings.job_path("ingest_products")) == "include.jobs.ingest_products"

    def test_a_job_without_run_and_a_file_elsewhere_are_spark_submitted(self, tmp_path):
        assert entry_module(settings.job_path("athlete_age_by_year")) is None
        other = tmp_path / "ingest_customers.py"
        other.write_text("def run(spark, argv):\n    return {}\n")
        assert entry_module(other) is None  # not under include/jobs: never imported by name


class TestWarmExecutor:
    def test_one_executor_is_kept_warm_unless_set_to_zero(self):
        from tricloud.cluster.local_connect import MIN_EXECUTORS_ENV, server_conf

        assert server_conf({})["spark.dynamicAllocation.minExecutors"] == "1"
        assert server_conf({MIN_EXECUTORS_ENV: "0"})["spark.dynamicAllocation.minExecutors"] == "0"
        # Never more than the one executor the server may have (the other core stays for spark-submit jobs).
        assert server_conf({})["spark.dynamicAllocation.maxExecutors"] == "1"

    def test_another_value_fails_naming_the_setting_and_its_values(self):
        from tricloud.cluster.local_connect import MIN_EXECUTORS_ENV, min_executors

        with pytest.raises(ValueError, match=r"TRICLOUD_CONNECT_MIN_EXECUTORS='2'.*set it to 1 .* or 0"):
            min_executors({MIN_EXECUTORS_ENV: "2"})


class TestConnectRunnerExitCodes:
    """The Connect runner records the exit codes spark-submit's ``common.run`` exits with."""

    URL = "sc://127.0.0.1:9/"  # nothing listens: a failure there is never "the server died" for these errors

    @pytest.mark.parametrize("error", ["NoInputError", "InputFormatError"])
    def test_a_bad_input_is_the_data_error_exit(self, error):
        from include.jobs import DATA_ERROR_EXIT, inputs
        from tricloud.cluster.local_connect_runner import failure

        message, code = failure(getattr(inputs, error)("no input for hour 2026-11-24T10:00Z"), self.URL)
        assert code == DATA_ERROR_EXIT
        assert message == f"{error}: no input for hour 2026-11-24T10:00Z"

    def test_a_lost_lease_and_any_other_error(self):
        from include.lease import LEASE_LOST_EXIT, LeaseLostError
        from tricloud.cluster.local_connect_runner import failure

        assert failure(LeaseLostError("held by run 2"), self.URL)[1] == LEASE_LOST_EXIT
        assert failure(KeyError("boom"), "sc://127.0.0.1:9/")[1] is None
