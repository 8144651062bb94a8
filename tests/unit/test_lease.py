"""The hour lease on a local-directory lake: acquire, contention, staleness, fencing, release."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.lease import HourLease, LeaseLostError

HOUR = "2026-11-24T10:00:00+00:00"
T0 = datetime(2026, 11, 24, 11, 5, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def states(**by_run: str):
    """holder_state answering from a table; a run not in it is unknown to Airflow (raises, like a 404)."""

    def holder_state(dag_id: str, run_id: str) -> str | None:
        if run_id not in by_run:
            raise LookupError(f"no run {run_id}")
        return by_run[run_id]

    return holder_state


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lease(tmp_path, clock) -> HourLease:
    return HourLease(tmp_path, "customer_enrichment", HOUR, ttl=timedelta(minutes=30), clock=clock)


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
        ctx = multiprocessing.get_context("fork")
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

        ctx = multiprocessing.get_context("fork")
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
