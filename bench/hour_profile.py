"""Benchmark: Airflow's own share of one hour, and the memory of the whole embedded stack during it.

For each profile -- ``default`` (Airflow's and Spark's defaults for the settings of
:data:`stack.config.LEAN_SETTINGS`), ``lean`` (the stack's settings) and ``lean-connect`` (the stack's
settings, jobs through the Spark Connect server: ``TRICLOUD_SPARK_SUBMIT_MODE=connect``) -- a world of its own (own
ports, Spark cluster, emulators, Airflow home, lake; never `.env`'s) is started, ``--hours`` hours of
``--rows`` customer rows are run one after the other through the DAG (REST trigger), and then:

- from Airflow's own records (task instances' ``queued_when`` / ``start_date`` / ``end_date`` from the
  REST API), per task and per stage (a task's stage = its depth in the DAG), the gap between the end
  of the upstream tasks and the task's queueing (scheduler), between queueing and start (executor and
  task start-up), and the task's own runtime;
- the peak PSS of every process of the stack during the hours, grouped by role
  (:mod:`bench.stack_memory`).

Figures of the last hour of each profile are reported (the first hour after a start pays one-off
costs); all hours are in the JSON. Writes bench/results/airflow_latency.{json,md} and
bench/results/stack_memory.{json,md}.

    flock /tmp/tricloud-heavy.lock python -m bench.hour_profile            (about 4 minutes on 2 cores)
    python -m bench.hour_profile --profiles lean --hours 1 --rows 2000      (a quick check)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.common import RESULTS, machine, own_world, write_results
from bench.hour_timeline import TaskTiming, stage_rows, task_timings
from bench.stack_memory import GroupedMemorySampler, GroupedPeaks
from include import generate

DAG_ID = "customer_enrichment"
FIRST_HOUR = datetime(2026, 2, 1, 0, tzinfo=UTC)
PROFILES = ("default", "lean", "lean-connect")


def profile_env(env: dict[str, str], profile: str) -> dict[str, str]:
    """The world's env for ``profile``: ``default`` drops every LEAN_SETTINGS key (Airflow's and Spark's
    own defaults apply), ``lean`` keeps them, ``lean-connect`` also runs the jobs through Spark Connect.
    Scheduled runs off in all (only the triggered hours run)."""
    from stack.config import LEAN_SETTINGS
    from tricloud.cluster.local_connect import CONNECT, MODE_ENV, SPARK_SUBMIT

    out = dict(env) if profile != "default" else {k: v for k, v in env.items() if k not in LEAN_SETTINGS}
    out[MODE_ENV] = CONNECT if profile == "lean-connect" else SPARK_SUBMIT
    out["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    return out


def run_profile(profile: str, args: argparse.Namespace) -> dict:
    from stack.__main__ import spark_backend, up
    from stack.airflow import LocalAirflow, RestClient
    from stack.emulators import emulators

    with own_world(f"hour-{profile}") as world_env:
        env = profile_env(world_env, profile)
        for key in set(os.environ) - set(env):  # the Spark backend and emulators read os.environ
            if key in world_env:
                del os.environ[key]
        os.environ.update(env)
        t0 = time.monotonic()
        up(env)
        stack_start_s = time.monotonic() - t0
        airflow = LocalAirflow(env)
        client = RestClient(airflow.url, "admin", airflow.admin_password() or "")
        client.wait_for_dag(DAG_ID)
        offset = PROFILES.index(profile) * 100 + int(time.time() // 60) % 5_000
        hours = [FIRST_HOUR + timedelta(hours=offset + i) for i in range(args.hours)]
        for h in hours:
            generate.generate_hour(env["LAKE_ROOT"], h, rows=args.rows)
        roots = airflow.pids() + list(spark_backend(env).pids().values())
        roots += [pid for p in emulators(env) if (pid := p.pid())]
        runs = []
        with GroupedMemorySampler(roots, interval=args.interval) as mem:
            for h in hours:
                runs.append(one_hour(client, h))
                print(f"[{profile}] {h:%Y-%m-%dT%H}: {runs[-1]['wall_s']:.1f}s", flush=True)
        return {"profile": profile, "stack_start_s": round(stack_start_s, 1), "runs": runs, "memory": mem.result}


def one_hour(client, hour: datetime) -> dict:
    logical = (hour + timedelta(hours=1)).isoformat()
    run_id = f"profile__{hour:%Y%m%dT%H}__{time.time_ns()}"
    t0 = time.perf_counter()
    client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": logical})
    while (run := client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}"))["state"] not in ("success", "failed"):
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    if run["state"] != "success":
        raise RuntimeError(f"run {run_id} {run['state']}: see the task logs in the world's Airflow home")
    tis = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    tasks = client.call("GET", f"/dags/{DAG_ID}/tasks")["tasks"]
    timings = task_timings(tis, {t["task_id"]: t["downstream_task_ids"] for t in tasks}, run)
    return {"run_id": run_id, "wall_s": round(wall, 2), "tasks": [t.as_dict() for t in timings]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="customer rows per hour (default 100000)")
    parser.add_argument("--hours", type=int, default=2, help="hours per profile, one after the other (default 2)")
    parser.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES))
    parser.add_argument("--interval", type=float, default=1.0, help="memory sampling interval, seconds")
    args = parser.parse_args(argv)
    before = previous_memory()  # read before this run writes airflow_latency.json and stack_memory.json
    results = [run_profile(p, args) for p in args.profiles]
    report_latency(args, results)
    report_memory(args, results, before)


def _last(result: dict) -> list[TaskTiming]:
    return [TaskTiming(**t) for t in result["runs"][-1]["tasks"]]


SHARED = (
    "Taken on a shared 2-core machine (other jobs may run beside it), so absolute figures move with their "
    "load; the profiles ran in the same invocation, one after the other."
)


def report_latency(args: argparse.Namespace, results: list[dict]) -> None:
    by = {r["profile"]: r for r in results}
    stages = {p: stage_rows(_last(r)) for p, r in by.items()}
    payload = {
        "benchmark": "customer_enrichment one hour: scheduler-to-task latency per stage, from task instances",
        "rows_per_hour": args.rows,
        "hours_per_profile": args.hours,
        "profiles": {
            p: {
                "stack_start_s": r["stack_start_s"],
                "wall_s": [x["wall_s"] for x in r["runs"]],
                "stages_last_hour": stages[p],
                "runs": r["runs"],
            }
            for p, r in by.items()
        },
        "settings": __import__("stack.config", fromlist=["LEAN_SETTINGS"]).LEAN_SETTINGS,
        "machine": machine() | {"shared": True},
    }
    cols = list(by)
    head = "| stage | tasks | " + " | ".join(f"{p}: wait (s) | {p}: queued→start (s) | {p}: run (s)" for p in cols)
    lines = [head + " |", "|" + "---|" * (2 + 3 * len(cols))]
    base = stages[cols[0]]
    for i, row in enumerate(base):
        cells = [str(row["stage"]), ", ".join(row["tasks"])]
        for p in cols:
            s = stages[p][i] if i < len(stages[p]) else {}
            cells += [f"{s.get('wait_s', '-')}", f"{s.get('queued_to_start_s', '-')}", f"{s.get('run_s', '-')}"]
        lines.append("| " + " | ".join(cells) + " |")
    totals = []
    for p in cols:
        st = stages[p]
        waits = sum(s["wait_s"] for s in st)
        runs = sum(s["run_s"] for s in st)
        wall = by[p]["runs"][-1]["wall_s"]
        totals.append(
            f"| {p} | {wall:.1f} | {waits:.1f} | {runs:.1f} | "
            f"{statistics.median([x['wall_s'] for x in by[p]['runs']]):.1f} |"
        )
    md = (
        "# Airflow's own share of one hour: scheduler-to-task latency per stage\n\n"
        f"{args.rows:,} customer rows, {args.hours} hours per profile one after the other, figures of the last "
        "hour; from the task instances' queued/start/end times (REST API). A stage's *wait* = its first "
        "task's start − the previous stage's last end (scheduler loop + executor + task start-up); "
        "*queued→start* is the executor/start-up part of it; *run* = the stage's last end − first start. "
        f"`default` = Airflow's and Spark's defaults, `lean` = stack.config.LEAN_SETTINGS, `lean-connect` = lean with "
        f"the jobs through Spark Connect. {SHARED}\n\n"
        + "\n".join(lines)
        + "\n\n| profile | last hour, trigger → success (s) | Σ waits (s) | Σ stage runs (s) "
        "| median of the hours (s) |\n|---|---|---|---|---|\n" + "\n".join(totals) + "\n"
    )
    write_results("airflow_latency", payload, md)


def previous_memory() -> dict:
    """The last recorded stack_memory.json ("before" of this run), or {} when there is none.

    A file that already carries a ``before`` keeps it (a re-run after a cut still compares with the figures
    taken before the cut) unless ``TRICLOUD_BENCH_NEW_BASELINE=1``.
    """
    path = RESULTS / "stack_memory.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("before") and os.environ.get("TRICLOUD_BENCH_NEW_BASELINE") != "1":
        return old["before"]
    return {
        "peak_total_pss_mib": old.get("peak_total_pss_mib", {}),
        "peak_pss_mib_by_group": old.get("peak_pss_mib_by_group", {}),
        "wall_s": old.get("wall_s") or _latency_walls(),
        "date": (old.get("machine") or {}).get("date"),
    }


def _latency_walls() -> dict[str, list[float]]:
    """Each profile's hour wall times from the last airflow_latency.json (older stack_memory.json had none)."""
    try:
        old = json.loads((RESULTS / "airflow_latency.json").read_text())
    except (OSError, ValueError):
        return {}
    return {p: r.get("wall_s", []) for p, r in old.get("profiles", {}).items()}


def report_memory(args: argparse.Namespace, results: list[dict], before: dict) -> None:
    peaks: dict[str, GroupedPeaks] = {r["profile"]: r["memory"] for r in results}
    walls = {r["profile"]: [x["wall_s"] for x in r["runs"]] for r in results}
    cols = list(peaks)
    old_total = before.get("peak_total_pss_mib", {})
    old_groups = before.get("peak_pss_mib_by_group", {})
    groups = list(dict.fromkeys(g for p in cols for g in [*old_groups.get(p, {}), *peaks[p].mib()]))
    payload = {
        "benchmark": "peak PSS of every process of the embedded stack during one-hour runs, grouped",
        "rows_per_hour": args.rows,
        "hours_per_profile": args.hours,
        "sampling_interval_s": args.interval,
        "peak_total_pss_mib": {p: round(peaks[p].peak_total_pss / 2**20) for p in cols},
        "peak_pss_mib_by_group": {p: peaks[p].mib() for p in cols},
        "peak_processes_by_group": {p: peaks[p].peak_processes for p in cols},
        "wall_s": walls,
        "top_processes": {p: peaks[p].top_processes() for p in cols},
        "samples": {p: peaks[p].samples for p in cols},
        "before": before,
        "settings": __import__("stack.config", fromlist=["LEAN_SETTINGS"]).LEAN_SETTINGS,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "reference_mib": {"issue 16 (bench/results/pipeline.md)": 3164, "goal": 2048},
        "machine": machine() | {"shared": True},
    }
    head = "| group | " + " | ".join(f"{p} before (MiB) | {p} now (MiB) | {p} processes" for p in cols) + " |"
    rows = [head, "|" + "---|" * (1 + 3 * len(cols))]
    for g in groups:
        cells = [g]
        for p in cols:
            cells += [
                str(old_groups.get(p, {}).get(g, "-")),
                str(peaks[p].mib().get(g, "-")),
                str(peaks[p].peak_processes.get(g, "-")),
            ]
        rows.append("| " + " | ".join(cells) + " |")
    total = " | ".join(f"**{old_total.get(p, '-')}** | **{payload['peak_total_pss_mib'][p]}** | " for p in cols)
    rows.append(f"| **whole stack (peak of the sum)** | {total}")
    old_walls = before.get("wall_s", {})
    wall_rows = [
        f"| {p} | {', '.join(map(str, old_walls.get(p, []))) or '-'} | {', '.join(map(str, walls[p]))} |" for p in cols
    ]
    top_rows = [
        f"| {p} | {t['group']} | `{t['command']}` | {t['peak_pss_mib']} |"
        for p in cols
        for t in peaks[p].top_processes(12)
    ]
    md = (
        "# Peak PSS of the embedded stack during an hour, by process group\n\n"
        f"{args.rows:,} customer rows, {args.hours} hours per profile; psutil every {args.interval} s over every "
        "process of the stack (Airflow components and their task processes, Spark master/worker/drivers/"
        "executors, the three emulators). A group's peak is its own largest sum; the whole stack's peak is the "
        "largest total of one sample. *before* = the figures recorded before this run "
        f"({before.get('date') or 'none'}), *now* = this run. Reference: 3,164 MiB (bench/results/pipeline.md); "
        f"goal ≤ 2,048 MiB. {SHARED} Load average at the end (1/5/15 min): "
        f"{', '.join(map(str, payload['load_average_1_5_15']))}.\n\n"
        + "\n".join(rows)
        + "\n\n## Hour wall time, trigger → success (s), each hour\n\n| profile | before | now |\n|---|---|---|\n"
        + "\n".join(wall_rows)
        + "\n\n## The largest processes (own peak PSS)\n\n| profile | group | command | peak PSS (MiB) |\n"
        "|---|---|---|---|\n" + "\n".join(top_rows) + "\n"
    )
    write_results("stack_memory", payload, md)


if __name__ == "__main__":
    main()
