"""One writer per hour: a lease on an hour of a pipeline, stored in the lake that every worker shares.

No Airflow here (the Spark driver checks the lease too, just before it publishes); the Airflow side
(the ``claim_hour`` sensor, the ``release_hour`` teardown, the fencing hook) is ``tricloud.hour_lease``.

Layout: one directory per hour, ``<lake>/_leases/<pipeline>/date=YYYY-MM-DD/hour=HH/``, holding one
JSON file per **generation** (``000001.json``, ``000002.json``, …). The highest generation is the
lease; its number is the fencing token. A file appears atomically with its whole content and only if
its name is free (locally: written to a temporary name, then hard-linked; on an ``s3://`` lake: a
conditional PUT ``If-None-Match: *``; on a ``gs://`` lake: an upload with ``ifGenerationMatch=0``;
:mod:`include.lease_store`), so of two runs that both try to take
generation n+1 exactly one succeeds. Only the holder rewrites its own file (renewal, release), with an
atomic rename (one PUT); nobody ever rewrites another generation.

The lease is free when the top generation is released, when its holder's DAG run is in a terminal
state (asked through ``holder_state``), or when its last renewal is older than ``ttl`` (a holder whose
run cannot be asked about, e.g. deleted). A run that finds its *own* run id on top takes the next
generation (a cleared or retried run re-claims, and fences out its own older attempt).

Fencing: a writer calls :meth:`HourLease.check` with its generation right before writing; it raises
:class:`LeaseLostError` naming the current holder when a higher generation exists. Fencing is per
task *attempt* too: :meth:`HourLease.renew` with ``task_id``/``try_number`` records the attempt as an
empty marker file ``NNNNNN.<task_id>.try<N>`` next to the generation's file (its own file, so parallel
tasks never overwrite each other's entry), and a check naming a lower try of the same task is refused
(a killed task's orphaned process outlives it and shares the generation with its retry). This is a check
before the write, not a conditional write (files and object stores offer no compare-and-swap on a
token), so it relies on a takeover happening only when the holder's run is over or silent for a TTL.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from include import lake
from include.lease_store import LeaseDir, LocalLeaseDir, lease_dir

#: Airflow DAG run states after which a run writes nothing more.
TERMINAL_STATES = frozenset({"success", "failed"})
DEFAULT_TTL = timedelta(hours=1)
#: Exit code of a Spark job (include/jobs) that lost the lease; SparkJobOperator fails it without retry.
LEASE_LOST_EXIT = 86
#: Generations kept per hour (older ones are history only: who processed the hour before).
KEEP_GENERATIONS = 5
_GEN_FILE = re.compile(r"^(\d{6,})\.json$")
_ATTEMPT_FILE = re.compile(r"^(\d{6,})\.(.+)\.try(\d+)$")
_ADOPTED_FILE = re.compile(r"^(\d{6,})\.(.+)\.try(\d+)\.adopted$")

#: ``holder_state(dag_id, run_id)``: the run's state (e.g. "running", "failed"), None when unknown.
HolderState = Callable[[str, str], str | None]


class LeaseLostError(RuntimeError):
    """This writer's generation is no longer the lease: another run holds the hour. Nothing was written."""


@dataclass(frozen=True)
class LeaseRecord:
    """One generation of an hour's lease (the JSON content of its file). Times are UTC."""

    generation: int
    dag_id: str
    run_id: str
    holder: str  # host, pid and task of the claimer, for people reading the lake
    acquired_at: datetime
    renewed_at: datetime
    released: bool = False

    def to_json(self) -> str:
        """The record as the JSON text of its generation file (times as ISO 8601 with offset)."""
        return json.dumps(asdict(self), default=datetime.isoformat, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LeaseRecord:
        """Parse a generation file's text (:meth:`to_json`); raises ``ValueError``/``KeyError`` if malformed."""
        raw = json.loads(text)
        for key in ("acquired_at", "renewed_at"):
            raw[key] = datetime.fromisoformat(raw[key])
        return cls(**raw)

    def describe(self) -> str:
        """One line naming the run, generation and holder, for logs and error messages."""
        return f"run {self.run_id!r} of {self.dag_id} (generation {self.generation}, holder {self.holder})"


@dataclass(frozen=True)
class Claim:
    """Outcome of :meth:`HourLease.try_acquire`: ours (``acquired``) or the holder's record, and why."""

    acquired: bool
    record: LeaseRecord | None
    reason: str


def default_holder() -> str:
    """``host:pid`` of this process: who claimed a lease, for people reading the lake."""
    return f"{socket.gethostname()}:{os.getpid()}"


class HourLease:
    """The lease of one hour of one pipeline in the lake at ``lake_root``.

    :param lake_root: the lake every worker shares.
    :param pipeline: e.g. ``customer_enrichment``.
    :param hour: start of the hour (ISO 8601 or datetime; must be a whole UTC hour).
    :param ttl: a lease not renewed for this long is free even if its holder's state is unknown.
    :param clock: returns the current UTC time (tests pass their own).
    :param client: for an ``s3://`` lake, the boto3 S3 client to use, for a ``gs://`` lake the
        google-cloud-storage client (the provider hook's on the Airflow side); default one from the standard
        client settings (a Spark driver).
    """

    def __init__(
        self,
        lake_root: str | Path,
        pipeline: str,
        hour: str | datetime,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client: Any = None,
    ) -> None:
        self.hour = lake.parse_hour(hour)
        self.pipeline = pipeline
        self.store: LeaseDir = lease_dir(lake_root, f"_leases/{pipeline}/{lake.hour_relpath(self.hour)}", client)
        #: Where the lease is: a directory (``Path``), or the ``s3://`` / ``gs://`` URI of its prefix.
        self.path: Path | str = self.store.path if isinstance(self.store, LocalLeaseDir) else self.store.where
        self.ttl = ttl
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def _file(generation: int) -> str:
        return f"{generation:06d}.json"

    def generations(self) -> list[int]:
        """The kept generation numbers of this hour, ascending (empty when never claimed)."""
        return sorted(int(m.group(1)) for n in self.store.names() if (m := _GEN_FILE.match(n)))

    def current(self) -> LeaseRecord | None:
        """The top generation's record, or None when the hour was never claimed."""
        for gen in reversed(self.generations()):
            if (record := self._record(gen)) is not None:
                return record
        return None

    def history(self) -> list[LeaseRecord]:
        """The kept generations, oldest first (who claimed the hour, and when)."""
        return [r for g in self.generations() if (r := self._record(g)) is not None]

    def why_free(self, record: LeaseRecord | None, holder_state: HolderState) -> str | None:
        """Why ``record`` no longer holds the hour, or None when it still does."""
        if record is None:
            return "never claimed"
        if record.released:
            return f"released by {record.describe()}"
        try:
            state = holder_state(record.dag_id, record.run_id)
        except Exception:  # an unknown run (deleted, another deployment's): the TTL decides
            state = None
        if state in TERMINAL_STATES:
            return f"{record.describe()} is {state}"
        age = self.clock() - record.renewed_at
        if age > self.ttl:
            return (
                f"{record.describe()} last renewed {age.total_seconds():.0f}s ago (TTL {self.ttl.total_seconds():.0f}s)"
            )
        return None

    # -- writing ---------------------------------------------------------------------------------
    def try_acquire(self, dag_id: str, run_id: str, holder_state: HolderState, holder: str | None = None) -> Claim:
        """Take the hour if it is free (or already ours); never waits.

        Returns a :class:`Claim` with our new record when acquired, else the holder's record and why
        it still holds the hour. Losing a race for the next generation counts as "held".
        """
        top = self.current()
        if top is not None and (top.dag_id, top.run_id) == (dag_id, run_id):
            reason = f"re-claimed by the same run (generation {top.generation} was this run's)"
        else:
            reason = self.why_free(top, holder_state)
            if reason is None:
                return Claim(False, top, f"held by {top.describe()}, renewed at {top.renewed_at:%H:%M:%S} UTC")
        now = self.clock()
        record = LeaseRecord(
            generation=(top.generation if top else 0) + 1,
            dag_id=dag_id,
            run_id=run_id,
            holder=holder or default_holder(),
            acquired_at=now,
            renewed_at=now,
        )
        created = self._create(record)
        # Read back what the store holds: a PUT whose reply was lost is ours although the client saw 412,
        # and a store that ignores If-None-Match would let a second writer overwrite ours unnoticed.
        try:
            stored = self._record(record.generation)
        except (ValueError, KeyError, TypeError):
            stored = None
        if stored != record:
            winner = self.current()
            why = (
                "taken a moment ago by"
                if not created
                else "overwritten at once by (a store without conditional writes?)"
            )
            return Claim(False, winner, f"{why} {winner.describe() if winner else 'another run'}")
        self._prune(record.generation)
        return Claim(True, record, reason)

    def attempts(self, generation: int) -> dict[str, int]:
        """``{task_id: highest try_number}`` recorded by :meth:`renew` for ``generation``."""
        latest: dict[str, int] = {}
        for name in self.store.names():
            if (m := _ATTEMPT_FILE.match(name)) and int(m.group(1)) == generation:
                latest[m.group(2)] = max(latest.get(m.group(2), 0), int(m.group(3)))
        return latest

    def check(self, generation: int, task_id: str | None = None, try_number: int | None = None) -> LeaseRecord:
        """Return our record if ``generation`` is still the lease; raise :class:`LeaseLostError` otherwise.

        With ``task_id`` and ``try_number`` it also raises when a later try of that task was recorded
        (:meth:`renew`): this is an older attempt, e.g. a killed task's orphaned Spark driver.
        """
        hour = f"hour {self.hour:%Y-%m-%dT%H:00Z} of {self.pipeline}"
        top = self.current()
        if top is None or top.generation != generation or top.released:
            if top is None or top.released:
                raise LeaseLostError(
                    f"lost the lease of {hour} (had generation {generation}; now released), so this attempt "
                    f"writes nothing: clear this run to re-process the hour. Its lease is in {self.path}"
                )
            mine = self._record(generation)
            if mine is not None and (mine.dag_id, mine.run_id) == (top.dag_id, top.run_id):
                raise LeaseLostError(
                    f"this is an older attempt of this run ({top.run_id!r}, generation {generation}): the run "
                    f"re-claimed {hour} as generation {top.generation} (a clear re-ran claim_hour), so this "
                    f"attempt writes nothing; the newer one does. Its lease is in {self.path}"
                )
            raise LeaseLostError(
                f"lost the lease of {hour} (had generation {generation}; now held by {top.describe()}), so this "
                f"run writes nothing: clear this run after {top.run_id!r} finishes to re-process the hour. "
                f"Its lease is in {self.path}"
            )
        if task_id is not None and try_number is not None:
            latest = self.attempts(generation).get(task_id, 0)
            if latest > try_number and not self._adopted(generation, task_id, try_number):
                raise LeaseLostError(
                    f"try {try_number} of task {task_id!r} is an older attempt of this run: try {latest} of it "
                    f"runs now ({hour}, generation {generation}), so this attempt writes nothing"
                )
        return top

    def renew(
        self,
        generation: int,
        task_id: str | None = None,
        try_number: int | None = None,
        adopts: int | None = None,
    ) -> LeaseRecord:
        """Check that ``generation`` holds the hour and push its renewal time to now.

        With ``task_id`` and ``try_number``, first refuse an older attempt (as :meth:`check`), then
        record this attempt so that any lower try of the task is refused from now on, except the try
        ``adopts`` names: a retry that re-attaches to the job an earlier try started (a Spark job that
        outlived its worker) adopts that try, whose job then writes on as this attempt's work (an empty
        marker ``NNNNNN.<task_id>.try<adopts>.adopted``). The retry starts no job of its own while it
        does, so there is still one writer.
        """
        self.check(generation, task_id, try_number)
        if task_id is not None and try_number is not None:
            if adopts is not None and adopts < try_number:
                self.store.touch(f"{generation:06d}.{task_id}.try{adopts}.adopted")
            self.store.touch(f"{generation:06d}.{task_id}.try{try_number}")
        record = replace(self.check(generation, task_id, try_number), renewed_at=self.clock())
        self._rewrite(record)
        return record

    def _adopted(self, generation: int, task_id: str, try_number: int) -> bool:
        """Whether a later try of ``task_id`` adopted try ``try_number``'s job (:meth:`renew`)."""
        return self.store.exists(f"{generation:06d}.{task_id}.try{try_number}.adopted")

    def _record(self, generation: int) -> LeaseRecord | None:
        text = self.store.read(self._file(generation))
        return LeaseRecord.from_json(text) if text is not None else None  # None: pruned

    def release(self, generation: int) -> bool:
        """Mark our generation released; False (and nothing written) when it is no longer the lease."""
        try:
            record = self.check(generation)
        except LeaseLostError:
            return False
        self._rewrite(replace(record, released=True, renewed_at=self.clock()))
        return True

    def _create(self, record: LeaseRecord) -> bool:
        return self.store.create(self._file(record.generation), record.to_json())

    def _rewrite(self, record: LeaseRecord) -> None:
        self.store.replace(self._file(record.generation), record.to_json())

    def _prune(self, top: int) -> None:
        for name in self.store.names():
            m = _GEN_FILE.match(name) or _ATTEMPT_FILE.match(name) or _ADOPTED_FILE.match(name)
            if m and int(m.group(1)) <= top - KEEP_GENERATIONS:
                self.store.delete(name)
