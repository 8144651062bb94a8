"""The hour lease on a local-directory lake: acquire, contention, staleness, fencing, task attempts, release.

Where the lease is used (the Airflow hooks, the Spark driver, the demo's report): tests/unit/test_lease_callers.py.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.lease import HourLease, LeaseLostError
from tests.support.lease import HOUR, T0, states


class TestAcquire:
    def test_a_free_hour_is_taken_with_generation_1(self, lease):
        claim = lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        assert claim.acquired and claim.record.generation == 1
        assert lease.current() == claim.record
        assert lease.path.parts[-4:] == ("_leases", "customer_enrichment", "date=2026-11-24", "hour=10")
        assert [p.name for p in lease.path.iterdir()] == ["000001.json"]  # no temp file left

    def test_a_held_hour_is_refused_naming_the_holder(self, lease):
        lease.try_acquire("dag", "run_a", states(run_a="running"), holder="w1:42")
        claim = lease.try_acquire("dag", "run_b", states(run_a="running", run_b="running"))
        assert not claim.acquired
        assert claim.record.run_id == "run_a"
        assert "run_a" in claim.reason and "w1:42" in claim.reason
        assert lease.generations() == [1]

    def test_the_same_run_reclaims_with_a_new_generation(self, lease):
        # A cleared run re-claims; its older attempt is fenced out by the new generation.
        first = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        again = lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert again.acquired and again.record.generation == 2
        with pytest.raises(LeaseLostError):
            lease.check(first.generation)

    def test_the_same_run_id_of_another_dag_is_another_holder(self, lease):
        lease.try_acquire("dag_one", "manual__1", states(**{"manual__1": "running"}))
        assert not lease.try_acquire("dag_two", "manual__1", states(**{"manual__1": "running"})).acquired


class TestStaleness:
    def test_released_lease_is_free(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        assert lease.release(gen)
        claim = lease.try_acquire("dag", "run_b", states(run_a="running", run_b="running"))
        assert claim.acquired and claim.record.generation == 2
        assert "released" in claim.reason

    @pytest.mark.parametrize("terminal", ["failed", "success"])
    def test_lease_of_a_finished_run_is_free_at_once(self, lease, terminal):
        lease.try_acquire("dag", "run_a", states(run_a="running"))
        claim = lease.try_acquire("dag", "run_b", states(run_a=terminal, run_b="running"))
        assert claim.acquired and claim.record.run_id == "run_b"
        assert terminal in claim.reason

    def test_lease_not_renewed_for_a_ttl_is_free(self, lease, clock):
        lease.try_acquire("dag", "run_a", states(run_a="running"))
        clock.now = T0 + timedelta(minutes=29)
        assert not lease.try_acquire("dag", "run_b", states(run_a="running")).acquired
        clock.now = T0 + timedelta(minutes=31)
        claim = lease.try_acquire("dag", "run_b", states(run_a="running"))
        assert claim.acquired and "TTL" in claim.reason

    def test_renewal_keeps_a_live_lease(self, lease, clock):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        clock.now = T0 + timedelta(minutes=25)
        lease.renew(gen)
        clock.now = T0 + timedelta(minutes=50)  # 50 min after the claim, 25 after the renewal
        assert not lease.try_acquire("dag", "run_b", states(run_a="running")).acquired

    def test_holder_unknown_to_airflow_waits_for_the_ttl(self, lease, clock):
        # A deleted run (or one of another deployment sharing the lake): not presumed dead at once.
        lease.try_acquire("dag", "gone", states(gone="running"))
        assert not lease.try_acquire("dag", "run_b", states()).acquired
        clock.now = T0 + timedelta(minutes=31)
        assert lease.try_acquire("dag", "run_b", states()).acquired


class TestFencing:
    def test_holder_passes_the_check(self, lease):
        rec = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        assert lease.check(rec.generation) == rec

    def test_holder_overtaken_after_a_ttl_is_refused_naming_the_new_holder(self, lease, clock):
        old = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        clock.now = T0 + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"), holder="w2:7")
        with pytest.raises(LeaseLostError, match="run_b.*w2:7"):
            lease.check(old.generation)
        with pytest.raises(LeaseLostError):
            lease.renew(old.generation)
        assert not lease.release(old.generation)  # the old holder cannot free the new one's hour
        assert lease.current().run_id == "run_b" and not lease.current().released

    def test_released_generation_no_longer_writes(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.release(gen)
        with pytest.raises(LeaseLostError, match="released"):
            lease.check(gen)

    def test_never_claimed_hour_refuses_every_generation(self, lease):
        with pytest.raises(LeaseLostError):
            lease.check(1)

    def test_lost_lease_names_the_fix(self, lease, clock):
        old = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        clock.now = T0 + timedelta(hours=1)
        lease.try_acquire("dag", "run_b", states(run_a="running"))
        with pytest.raises(LeaseLostError, match="clear this run after 'run_b' finishes to re-process the hour"):
            lease.check(old.generation)

    def test_an_older_attempt_of_the_same_run_is_told_so_not_named_a_foreign_holder(self, lease):
        first = lease.try_acquire("dag", "run_a", states(run_a="running")).record
        lease.try_acquire("dag", "run_a", states(run_a="running"))  # a clear re-ran claim_hour
        with pytest.raises(LeaseLostError, match="an older attempt of this run") as err:
            lease.check(first.generation)
        assert "finishes" not in str(err.value)


class TestAttempts:
    """A killed task's orphaned process and its retry share one generation: the lower try is refused."""

    def test_a_lower_try_of_the_same_task_is_refused_once_a_later_try_renewed(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=1)
        assert lease.check(gen, "ingest", 1).generation == gen  # no later try yet
        lease.renew(gen, task_id="ingest", try_number=2)  # the retry
        with pytest.raises(LeaseLostError, match="try 1 of task 'ingest' is an older attempt of this run"):
            lease.check(gen, "ingest", 1)  # the orphaned driver of try 1, just before it publishes
        with pytest.raises(LeaseLostError):
            lease.renew(gen, task_id="ingest", try_number=1)
        assert lease.check(gen, "ingest", 2).generation == gen
        assert lease.attempts(gen) == {"ingest": 2}

    def test_a_retry_that_adopts_the_earlier_try_lets_its_job_publish(self, lease):
        """A retry re-attaching to try 1's still-running Spark job (issue 15): that job writes on, for try 2."""
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=1)
        lease.renew(gen, task_id="ingest", try_number=2, adopts=1)
        assert lease.check(gen, "ingest", 1).generation == gen  # the adopted job may publish
        assert lease.check(gen, "ingest", 2).generation == gen
        assert lease.attempts(gen) == {"ingest": 2}  # the marker is no attempt of its own
        lease.renew(gen, task_id="ingest", try_number=3)  # a try that adopts nothing more
        assert lease.check(gen, "ingest", 1).generation == gen  # (still adopted: try 3 starts a fresh job)
        with pytest.raises(LeaseLostError, match="try 2 of task 'ingest' is an older attempt"):
            lease.check(gen, "ingest", 2)  # only the adopted try is let through, not every lower one

    def test_tries_of_other_tasks_do_not_fence_each_other(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="replicate.to_s3", try_number=3)
        lease.renew(gen, task_id="replicate.to_gcs", try_number=1)
        assert lease.attempts(gen) == {"replicate.to_s3": 3, "replicate.to_gcs": 1}
        assert lease.check(gen, "replicate.to_gcs", 1).generation == gen

    def test_a_check_without_attempt_ignores_tries(self, lease):
        gen = lease.try_acquire("dag", "run_a", states(run_a="running")).record.generation
        lease.renew(gen, task_id="ingest", try_number=2)
        assert lease.check(gen).generation == gen


class TestFilesystem:
    def test_a_lake_without_hard_links_fails_naming_what_to_set(self, lease, monkeypatch):
        def no_links(src, dst):  # what vfat, SMB or some FUSE mounts answer
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
        with pytest.raises(OSError, match=r"LAKE_ROOT must be on a filesystem with hard links \(local disk, NFS\)"):
            lease.try_acquire("dag", "run_a", states(run_a="running"))
        assert lease.generations() == []


class TestHistory:
    def test_old_generations_are_pruned_the_last_five_kept(self, lease):
        for i in range(8):
            lease.try_acquire("dag", f"run_{i}", states(**{f"run_{i - 1}": "success"}))
        assert lease.generations() == [4, 5, 6, 7, 8]
        assert [r.run_id for r in lease.history()] == [f"run_{i}" for i in range(3, 8)]


def slow_clock() -> datetime:
    # Read between looking at the lease and creating the next generation: a wide window for the race.
    time.sleep(0.2)
    return datetime.now(UTC)


def _contend(args) -> bool:
    root, run_id, start = args
    start.wait()
    lease = HourLease(root, "customer_enrichment", HOUR, clock=slow_clock)
    return lease.try_acquire("dag", run_id, lambda d, r: "running").acquired


class TestRace:
    def test_of_many_processes_claiming_at_once_exactly_one_wins(self, tmp_path):
        ctx = multiprocessing.get_context("spawn")  # fork after threads/a JVM can deadlock
        with ctx.Manager() as manager:
            start = manager.Barrier(8)
            with ctx.Pool(8) as pool:
                won = pool.map(_contend, [(tmp_path, f"run_{i}", start) for i in range(8)])
        assert sum(won) == 1
        lease = HourLease(tmp_path, "customer_enrichment", HOUR)
        assert lease.generations() == [1]
        assert lease.current().run_id == f"run_{won.index(True)}"

    def test_of_many_processes_taking_over_a_stale_lease_exactly_one_wins(self, tmp_path):
        HourLease(tmp_path, "customer_enrichment", HOUR).try_acquire("dag", "dead", lambda d, r: "running")

        ctx = multiprocessing.get_context("spawn")  # fork after threads/a JVM can deadlock
        with ctx.Manager() as manager:
            start = manager.Barrier(6)
            with ctx.Pool(6) as pool:
                won = pool.map(_take_over, [(tmp_path, f"run_{i}", start) for i in range(6)])
        assert sum(won) == 1
        assert HourLease(tmp_path, "customer_enrichment", HOUR).generations() == [1, 2]


def _take_over(args) -> bool:
    root, run_id, start = args
    start.wait()
    states = {"dead": "failed"}
    return (
        HourLease(root, "customer_enrichment", HOUR, clock=slow_clock)
        .try_acquire("dag", run_id, lambda d, r: states.get(r, "running"))
        .acquired
    )
