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
