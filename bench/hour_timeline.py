"""One DAG run's timeline from Airflow's own records: per task and per stage, wait versus work.

Input: the run's task instances and the DAG's edges as the REST API returns them
(``/dagRuns/{id}/taskInstances``: ``queued_when``, ``start_date``, ``end_date``, ISO 8601 UTC;
``/dags/{id}/tasks``: ``downstream_task_ids``). A task's *stage* is its depth in the DAG (the longest
chain of upstream tasks); for customer_enrichment: claim_hour, start_cluster, the two ingests, enrich,
then replicate / load / stop, verify, release. All durations in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class TaskTiming:
    """One task instance: its stage and, in seconds, ``scheduler_s`` (upstream end → queued),
    ``start_s`` (queued → start: executor pick-up, supervisor fork, task process start-up and the
    DAG file parse until the task reports running), ``run_s`` (start → end)."""

    task_id: str
    stage: int
    upstream_end: str
    queued: str
    start: str
    end: str
    scheduler_s: float
    start_s: float
    run_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def depths(downstream: dict[str, list[str]]) -> dict[str, int]:
    """Each task's stage: 0 for tasks without upstream, else 1 + the largest stage of its upstream tasks."""
    upstream: dict[str, list[str]] = {t: [] for t in downstream}
    for t, downs in downstream.items():
        for d in downs:
            upstream.setdefault(d, []).append(t)
    out: dict[str, int] = {}

    def depth(t: str) -> int:
        if t not in out:
            out[t] = 1 + max((depth(u) for u in upstream[t]), default=-1)
        return out[t]

    for t in upstream:
        depth(t)
    return out


def task_timings(tis: list[dict], downstream: dict[str, list[str]], run: dict) -> list[TaskTiming]:
    """Per task instance of one run, its :class:`TaskTiming`, ordered by stage then start.

    The first task's upstream end is the run's start (``run['start_date']``).
    :raises ValueError: a task instance without queued/start/end time (the run did not finish).
    """
    stage = depths(downstream)
    upstream: dict[str, list[str]] = {t: [] for t in downstream}
    for t, downs in downstream.items():
        for d in downs:
            upstream[d].append(t)
    ends = {ti["task_id"]: _ts(ti["end_date"]) for ti in tis}
    out = []
    for ti in tis:
        queued, start, end = _ts(ti.get("queued_when")), _ts(ti["start_date"]), _ts(ti["end_date"])
        if not (queued and start and end):
            raise ValueError(f"task {ti['task_id']} has no queued/start/end time: {ti['state']}")
        ups = [ends[u] for u in upstream[ti["task_id"]] if ends.get(u)]
        up_end = max(ups) if ups else _ts(run["start_date"])
        out.append(
            TaskTiming(
                task_id=ti["task_id"],
                stage=stage[ti["task_id"]],
                upstream_end=up_end.isoformat(),
                queued=queued.isoformat(),
                start=start.isoformat(),
                end=end.isoformat(),
                scheduler_s=round((queued - up_end).total_seconds(), 2),
                start_s=round((start - queued).total_seconds(), 2),
                run_s=round((end - start).total_seconds(), 2),
            )
        )
    return sorted(out, key=lambda t: (t.stage, t.start))


def stage_rows(timings: list[TaskTiming]) -> list[dict]:
    """Per stage: its tasks, ``wait_s`` (first start − previous stage's last end, or − the run's start
    for stage 0), ``queued_to_start_s`` (the median of its tasks' queued → start) and ``run_s`` (last end −
    first start). The sum of waits and runs is the run's critical path as Airflow recorded it."""
    rows = []
    prev_end: datetime | None = None
    for s in sorted({t.stage for t in timings}):
        ts = [t for t in timings if t.stage == s]
        first = min(_ts(t.start) for t in ts)
        last = max(_ts(t.end) for t in ts)
        before = prev_end or min(_ts(t.upstream_end) for t in ts)
        q2s = sorted(t.start_s for t in ts)
        rows.append(
            {
                "stage": s,
                "tasks": [t.task_id for t in ts],
                "wait_s": round((first - before).total_seconds(), 2),
                "scheduler_s": round(min(t.scheduler_s for t in ts), 2),
                "queued_to_start_s": q2s[len(q2s) // 2],
                "run_s": round((last - first).total_seconds(), 2),
            }
        )
        prev_end = last
    return rows
