"""The Dataproc cluster's lifecycle through the ``dataproc`` backend (and the ``dataproc-serverless`` backend's
lack of one), against the local fake: create, reuse, replace a broken cluster, races between runs, the
create's request id, a failed start, teardown of only tricloud's own incarnation, and cancelling a deferred
batch. How the fakes stand in for Dataproc: tests/support/dataproc_backends.py. Our code is never patched.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.dataproc_backends import (
    BUCKET,
    CONN_ID,
    PROJECT,
    REGION,
    a_job,
    driver_finishes,
    make_backend,
    submitted,
)
from tricloud.cluster import JobState
from tricloud.cluster.gcp import MANAGED_LABEL, request_id
from tricloud.cluster.triggers import DataprocBatchTrigger


class TestDataprocCluster:
    def test_a_cluster_in_error_due_to_update_takes_jobs_and_is_kept(self, cloud):
        """ERROR_DUE_TO_UPDATE: an update failed, but the cluster still takes jobs (google-cloud-dataproc's
        ``ClusterStatus.State``): reused, never deleted."""
        kept = cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR_DUE_TO_UPDATE", labels={MANAGED_LABEL: "true"})
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        assert info.started is False and info.details["cluster_uuid"] == kept["clusterUuid"]
        assert backend.submit(a_job(), info.cluster_id).job_id and submitted(cloud) == 1
        assert cloud.calls["clusters.delete"] == 0 and cloud.created["cluster"] == 1

    def test_a_broken_cluster_with_active_jobs_is_not_deleted(self, cloud):
        cloud.add_cluster(PROJECT, REGION, "tricloud", "RUNNING", labels={MANAGED_LABEL: "true"})
        handle = make_backend("dataproc").submit(a_job(), "tricloud")  # another run's job, still running
        with cloud.lock:
            next(iter(cloud.clusters.values()))["status"] = {"state": "ERROR", "detail": "scripted ERROR"}
        with pytest.raises(RuntimeError, match=r"is ERROR but still has 1 active job\(s\) \(" + handle.job_id):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 0 and cloud.live_clusters() == {"tricloud": "ERROR"}
        with pytest.raises(Exception, match="is in state ERROR"):  # Dataproc takes no job there either
            make_backend("dataproc").submit(a_job(2), "tricloud")

    def test_a_late_teardown_never_deletes_a_new_incarnation_of_the_name(self, cloud):
        """Our cluster was deleted (its idle TTL), another run created one of the same name: our teardown,
        late, must leave theirs (the delete names our uuid; Dataproc refuses it for theirs)."""
        ours = make_backend("dataproc", created_by="run-1").start(timeout=5)
        with cloud.lock:
            cloud.clusters.clear()  # the idle TTL
        theirs = make_backend("dataproc", created_by="run-2").start(timeout=5)
        assert theirs.started is True and theirs.cluster_id != ours.cluster_id
        assert make_backend("dataproc").stop(cluster_id=ours.cluster_id) is False
        assert cloud.live_clusters() == {"tricloud": "RUNNING"}
        assert make_backend("dataproc").stop(cluster_id=theirs.cluster_id) is True  # theirs, by its own id
        assert make_backend("dataproc").stop(cluster_id="tricloud") is False  # a bare name still accepted

    def test_a_failed_start_deletes_only_the_incarnation_it_saw(self, cloud):
        cloud.next_cluster = "REPLACED"  # ours deleted while creating, another run's created meanwhile
        with pytest.raises(RuntimeError, match="deleted while it was being created: not a success.*it is gone"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.live_clusters() == {"tricloud": "CREATING"}  # theirs, coming up, untouched
        assert cloud.calls["clusters.delete"] == 1  # ours asked for by its uuid, refused for theirs

    def test_two_runs_creating_at_once_share_one_cluster(self, cloud):
        """Both saw NOT_FOUND, the other's create landed first: ours is ALREADY_EXISTS, and theirs is reused."""
        cloud.race_next_create = True
        info = make_backend("dataproc", created_by="run-2").start(timeout=5)
        assert info.started is False  # not ours: our teardown will not be asked for
        assert cloud.created["cluster"] == 1 and cloud.live_clusters() == {"tricloud": "RUNNING"}
        assert info.details["cluster_uuid"] == next(iter(cloud.clusters.values()))["clusterUuid"]

    def test_the_create_request_id_is_stable_and_a_stale_one_does_not_block_a_new_cluster(self, cloud):
        """The create's request id comes from the name and ``created_by``: the same create sent again is one
        request. Dataproc answers a repeated id with the first operation; when that cluster is gone (created
        and deleted in this process), the create is sent again and a cluster comes up."""
        first = make_backend("dataproc", created_by="run-1").start(timeout=5)
        assert make_backend("dataproc").stop(cluster_id=first.cluster_id) is True
        assert make_backend("dataproc").get_cluster() is None  # gone
        second = make_backend("dataproc", created_by="run-1").start(timeout=5)
        assert second.started is True and second.cluster_id != first.cluster_id
        assert cloud.created["cluster"] == 2
        assert cloud.calls["clusters.create"] == 3  # the second start's first create was the same request
        assert request_id("create", "tricloud", "run-1", "") in cloud.requests

    def test_a_submit_conflict_without_a_job_is_a_clear_error(self, cloud):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        cloud.hidden_jobs.add(handle.job_id)  # SubmitJob says ALREADY_EXISTS, GetJob does not find it
        cloud.requests.clear()  # past Dataproc's request-id window: the submit is not answered as a repeat
        with pytest.raises(RuntimeError, match="exists .* but GetJob does not find it.*TRICLOUD_DATAPROC_REGION"):
            make_backend("dataproc").submit(a_job(), info.cluster_id)
        assert submitted(cloud) == 1

    def test_start_creates_with_labels_and_idle_ttl_then_reuses(self, cloud):
        first = make_backend("dataproc", created_by="customer_enrichment/run-1").start(timeout=5)
        second = make_backend("dataproc").start(timeout=5)
        assert first.started is True and second.started is False
        assert second.cluster_id == first.cluster_id == f"tricloud/{first.details['cluster_uuid']}"
        assert second.details["cluster_uuid"] == first.details["cluster_uuid"]
        assert cloud.created["cluster"] == 1
        cluster = next(iter(cloud.clusters.values()))
        assert cluster["labels"][MANAGED_LABEL] == "true"
        assert cluster["labels"]["tricloud-created-by"] == "customer_enrichment-run-1"
        assert cluster["config"]["lifecycleConfig"]["idleDeleteTtl"] == "1800s"
        assert cluster["config"]["configBucket"] == BUCKET

    def test_teardown_deletes_only_its_own_and_is_idempotent(self, cloud):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        assert backend.stop(cluster_id=info.cluster_id) is True
        assert backend.stop(cluster_id=info.cluster_id) is False  # being deleted / not found: done
        assert cloud.live_clusters() == {}
        assert backend.stop(cluster_id=None) is False
        cloud.add_cluster(PROJECT, REGION, "team-x", "RUNNING")  # someone else's, unlabelled
        assert backend.stop(cluster_id="team-x") is False
        assert cloud.live_clusters() == {"team-x": "RUNNING"} and cloud.calls["clusters.delete"] == 1

    def test_teardown_leaves_a_cluster_another_run_still_uses(self, cloud, gcs):
        backend = make_backend("dataproc")
        info = backend.start(timeout=5)
        handle = backend.submit(a_job(), info.cluster_id)
        assert backend.stop(cluster_id=info.cluster_id) is False
        assert cloud.live_clusters() == {"tricloud": "RUNNING"}
        driver_finishes(cloud, gcs, handle, "SUCCEEDED")
        assert backend.stop(cluster_id=info.cluster_id) is True

    def test_a_cluster_that_ends_in_error_is_deleted_not_used(self, cloud):
        cloud.next_cluster = "ERROR"
        with pytest.raises(RuntimeError, match=r"did not start .*is ERROR.*it was deleted"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 1
        assert cloud.live_clusters() in ({}, {"tricloud": "DELETING"})

    def test_a_broken_tricloud_cluster_is_replaced_not_retried_into(self, cloud):
        broken = cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR", labels={MANAGED_LABEL: "true"})
        info = make_backend("dataproc").start(timeout=5)
        assert info.started is True and info.details["cluster_uuid"] != broken["clusterUuid"]
        assert cloud.calls["clusters.delete"] == 1 and cloud.live_clusters() == {"tricloud": "RUNNING"}

    def test_someone_elses_broken_cluster_is_an_error_naming_the_fix(self, cloud):
        cloud.add_cluster(PROJECT, REGION, "tricloud", "ERROR")
        with pytest.raises(RuntimeError, match="TRICLOUD_DATAPROC_CLUSTER_NAME"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.calls["clusters.delete"] == 0 and cloud.created["cluster"] == 1

    def test_a_cluster_deleted_while_being_created_is_never_a_success(self, cloud):
        cloud.next_cluster = "VANISH"
        with pytest.raises(RuntimeError, match="deleted while it was being created: not a success.*it is gone"):
            make_backend("dataproc").start(timeout=5)
        assert cloud.live_clusters() == {}
        with pytest.raises(RuntimeError, match="no running Dataproc cluster named 'tricloud'"):
            make_backend("dataproc").submit(a_job())
        assert submitted(cloud) == 0

    def test_killing_a_deferred_batch_cancels_it(self, cloud):
        """The provider's ``DataprocBatchTrigger`` has no ``on_kill``; ours cancels the batch when a user kills
        the deferred task (the trigger as the triggerer rebuilds it from its serialised form)."""
        backend = make_backend("dataproc-serverless")
        handle = backend.submit(a_job(), None)
        assert backend.job_status(handle).state is JobState.RUNNING
        made = DataprocBatchTrigger(
            batch_id=handle.job_id, project_id=PROJECT, region=REGION, gcp_conn_id=CONN_ID, api_endpoint=cloud.endpoint
        )
        classpath, kwargs = made.serialize()
        assert classpath == "tricloud.cluster.triggers.DataprocBatchTrigger"
        trigger = DataprocBatchTrigger(**kwargs)
        asyncio.run(trigger.on_kill())
        assert cloud.batch(handle.job_id)["state"] == "CANCELLED" and cloud.calls["operations.cancel"] == 1
        asyncio.run(trigger.on_kill())  # already ended: nothing asked
        assert cloud.calls["operations.cancel"] == 1

    def test_serverless_starts_and_stops_nothing(self, cloud):
        backend = make_backend("dataproc-serverless")
        info = backend.start(timeout=5)
        assert info.started is False and info.cluster_id is None
        assert backend.stop(cluster_id=None) is False
        assert cloud.created["cluster"] == 0 and sum(cloud.calls.values()) == 0
