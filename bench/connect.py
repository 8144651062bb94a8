"""Benchmark: one hour's ingest job through spark-submit vs through the Spark Connect server vs one open session.

Three ways to run the same job module (``include/jobs/ingest_customers.py`` by default) on the same
cluster, each on freshly generated hours of its own:

- **spark-submit**: the local backend in ``spark-submit`` mode (detached runner, SparkSubmitHook, a new
  driver JVM and executor per job), the DAG's Spark settings (``tricloud.spark_conf.SHORT_JOB_CONF``);
- **connect**: the local backend in ``connect`` mode (detached runner, a new session of the running
  Connect server per job): submit → SUCCEEDED, as the operator sees it;
- **open session**: the job's ``run(spark, argv)`` called in one Connect session opened beforehand, the
  reference of issue 16's goal "that hour ÷ the same Spark work in one already-open session ≤ 2.0".

The Connect way runs twice, with the server's idle executor released (``TRICLOUD_CONNECT_MIN_EXECUTORS=0``,
the setting before issue 16's breakdown) and kept warm (``=1``, the default now), each against the open
session measured right after it. Every Connect job's wall time is broken down by the phase timestamps its
runner records (``JobRecord.timings``) and the start time of the server's executor process (psutil), so
the gap to the open session is measured, not guessed; today's figures (:data:`BASELINE`, the last
measurement before the cuts) are printed beside the new ones.

Also the Connect server's memory (PSS of its driver JVM and executors, psutil) while it works and idle.
Runs in a world of its own (own ports, cluster, lake); median of ``--repeats`` after one warm-up each.

    python -m bench.connect --rows 100000 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

import psutil

from bench.common import MemorySampler, machine, median, own_world, write_results
from include import generate

FIRST_HOUR = datetime(2026, 3, 1, 0, tzinfo=UTC)


#: The figures before the cuts (this benchmark at commit 42415a1, 2026-11-30, same machine): the Connect
#: runner imported Airflow, the server released its executor after 15 s idle, the operator polled every 2 s.
BASELINE = {"spark-submit": 34.06, "connect": 26.32, "open session": 9.8, "ratio": 2.685}

#: The phases of a Connect job, from the runner's timings: (name, from mark, to mark, what it is).
PHASES = (
    ("submit", "submit", "spawned", "the backend's checks (connection, master, server alive) and the spawn"),
    ("runner start", "spawned", "runner", "a new Python process and the runner's own modules"),
    ("imports", "runner", "imported", "pyspark's Connect client and the job module"),
    ("session", "imported", "session", "SparkSession.builder.remote().create() and the job's settings"),
    ("run", "session", "ran", "the job's run(spark, argv): input checks, Spark work, lake commit"),
    ("release", "ran", "stopped", "spark.stop(): the session's views and cache released on the server"),
    ("record", "stopped", "recorded", "metrics read, SUCCEEDED recorded"),
    ("seen", "recorded", "seen", "until the caller's poll saw SUCCEEDED"),
)


def job_args(env: dict[str, str], hour: datetime) -> list[str]:
    end = hour + timedelta(hours=1)
    return ["--lake-root", env["LAKE_ROOT"], "--start", hour.isoformat(), "--end", end.isoformat()]


def through_backend(backend, job_name: str, env: dict[str, str], hour: datetime) -> tuple[float, dict]:
    """(submit → SUCCEEDED wall seconds, the record's phase timings + ``seen``) of one job on ``backend``.

    Waits as the operator does (:meth:`LocalJobsMixin.wait` between two status reads).
    """
    from tricloud import settings
    from tricloud.cluster import JobState, SparkJob, job_key
    from tricloud.spark_conf import SHORT_JOB_CONF

    key = job_key("bench_connect", f"{job_name}_{backend.mode}", f"{hour:%Y%m%dT%H}-{time.time_ns()}")
    job = SparkJob(
        key=key,
        name=f"bench.{job_name}",
        application=settings.job_path(job_name),
        args=tuple(job_args(env, hour)),
        result_uri=f"{env['LAKE_ROOT']}/_jobs/{key}/metrics.json",
        conf=SHORT_JOB_CONF,
    )
    t0 = time.perf_counter()
    handle = backend.submit(job)
    while not (status := backend.job_status(handle)).state.terminal:
        backend.wait(handle, 2.0)
    elapsed = time.perf_counter() - t0
    seen = time.time()
    if status.state is not JobState.SUCCEEDED:
        raise RuntimeError(backend.driver_error(handle, status))
    record = backend.jobs.read(handle.key)
    return elapsed, {**record.timings, "seen": seen}


def in_open_session(spark, job_name: str, env: dict[str, str], hour: datetime) -> float:
    """Wall seconds of the job's ``run`` in the already open session ``spark``."""
    import importlib

    module = importlib.import_module(f"include.jobs.{job_name}")
    t0 = time.perf_counter()
    module.run(spark, job_args(env, hour))
    return time.perf_counter() - t0


def server_procs(backend, app_id: str | None) -> list[psutil.Process]:
    """The Connect server's driver JVM (and children) and the executors of its application ``app_id``."""
    pid = backend.pids().get("connect")
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)] if pid else []
    worker = backend.pids().get("worker-0")  # executors are children of the worker: count the server's own
    if worker and app_id:
        for child in psutil.Process(worker).children(recursive=True):
            try:
                if app_id in " ".join(child.cmdline()):
                    procs.append(child)
            except psutil.Error:  # an executor that just ended
                continue
    return procs


def executor_starts(backend, app_id: str) -> list[float]:
    """Start times (epoch s) of the server's live executor JVMs."""
    driver = backend.pids().get("connect")
    out = []
    for p in server_procs(backend, app_id):
        try:
            if p.pid != driver and "CoarseGrainedExecutorBackend" in " ".join(p.cmdline()):
                out.append(p.create_time())
        except psutil.Error:
            continue
    return out


def server_pss(backend, app_id: str | None) -> int:
    """PSS bytes of the Connect server: its driver JVM and the executors of its application ``app_id``."""
    total = 0
    for p in server_procs(backend, app_id):
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def breakdown(timings: dict, executor_started: float | None) -> dict[str, float]:
    """Seconds per :data:`PHASES` phase, plus ``executor start`` (session → executor JVM started) when the
    job had to start an executor."""
    out = {name: round(timings[b] - timings[a], 2) for name, a, b, _ in PHASES if a in timings and b in timings}
    if executor_started is not None and executor_started >= timings.get("submit", 0):
        out["executor JVM started (after session)"] = round(executor_started - timings["session"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--job", default="ingest_customers", choices=["ingest_customers", "ingest_products"])
    args = parser.parse_args(argv)
    with own_world("connect") as env:
        run(env, args)


def connect_round(backends, env, args, hours, warm: bool, with_submit: bool) -> dict:
    """Start the Connect server (executor kept warm or not), then per iteration: [spark-submit,] a Connect
    job and the same run in one open session; medians, breakdowns and the server's memory."""
    from pyspark.sql import SparkSession

    from include.jobs import common
    from tricloud.cluster.local_connect import MIN_EXECUTORS_ENV

    os.environ[MIN_EXECUTORS_ENV] = "1" if warm else "0"
    backend = backends["connect"]
    t0 = time.perf_counter()
    backend.start()
    start_s = time.perf_counter() - t0
    spark = SparkSession.builder.remote(backend.connect_endpoint()[2]).create()
    common.configure(spark)
    app_id = common.application_id(spark)
    if warm:  # the warm executor registers a few seconds after the server listens
        deadline = time.monotonic() + 60
        while not executor_starts(backend, app_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
    idle_pss = server_pss(backend, app_id)
    ways: dict[str, list[float]] = {"connect": [], "open session": []}
    if with_submit:
        ways["spark-submit"] = []
    phases: list[dict] = []
    n = args.repeats + 1  # one warm-up per way, not counted
    try:
        with MemorySampler([backend.pids()["connect"]]) as mem:
            for i in range(n):
                h = [hours.pop() for _ in range(3)]
                times = {}
                if with_submit:
                    times["spark-submit"], _ = through_backend(backends["spark-submit"], args.job, env, h[0])
                times["connect"], timings = through_backend(backend, args.job, env, h[1])
                starts = [t for t in executor_starts(backend, app_id) if t >= timings["submit"]]
                times["open session"] = in_open_session(spark, args.job, env, h[2])
                split = breakdown(timings, min(starts) if starts else None)
                label = "warm executor" if warm else "idle executor released"
                print(f"[{label}]", ", ".join(f"{k} {v:.1f}s" for k, v in times.items()), "(warm-up)" if i == 0 else "")
                print("   connect breakdown:", ", ".join(f"{k} {v:.2f}" for k, v in split.items()), flush=True)
                if i:
                    for k, v in times.items():
                        ways[k].append(v)
                    phases.append(split)
            busy_pss = server_pss(backend, app_id)
    finally:
        spark.stop()  # its gRPC threads would keep the process alive
    backend.stop_connect()
    med = {k: median(v) for k, v in ways.items()}
    names = dict.fromkeys(k for split in phases for k in split)
    return {
        "min_executors": 1 if warm else 0,
        "seconds": ways,
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "ratio_connect_over_open_session": round(med["connect"] / med["open session"], 3),
        "breakdown_median_s": {k: round(median([s[k] for s in phases if k in s]), 2) for k in names},
        "breakdowns": phases,
        "server_start_s": round(start_s, 1),
        "server_pss_mib": {
            "idle_after_start": round(idle_pss / 2**20),
            "after_the_jobs": round(busy_pss / 2**20),
            "peak_driver_jvm": round(mem.peak_pss / 2**20),
        },
    }


def run(env: dict[str, str], args: argparse.Namespace) -> None:
    from tricloud.cluster.local import LocalStandaloneBackend

    backends = {
        mode: LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1, mode=mode)
        for mode in ("spark-submit", "connect")
    }
    n = args.repeats + 1
    hours = [FIRST_HOUR + timedelta(hours=i) for i in range(6 * n)]
    for h in hours:
        generate.generate_hour(env["LAKE_ROOT"], h, rows=args.rows)
    released = connect_round(backends, env, args, hours, warm=False, with_submit=True)
    warm = connect_round(backends, env, args, hours, warm=True, with_submit=False)
    submit_s = released["median_s"]["spark-submit"]
    payload = {
        "benchmark": f"{args.job}: spark-submit vs Spark Connect job vs one open session",
        "rows_per_hour": args.rows,
        "repeats": args.repeats,
        "baseline_before_cuts": BASELINE,
        "spark_submit_median_s": submit_s,
        "idle_executor_released": released,
        "warm_executor": warm,
        "ratio_connect_over_open_session": warm["ratio_connect_over_open_session"],
        "target_ratio": 2.0,
        "ratio_spark_submit_over_open_session": round(submit_s / warm["median_s"]["open session"], 3),
        "phases": {name: what for name, _, _, what in PHASES},
        "machine": machine(),
    }
    write_results("connect", payload, markdown(args, payload))


def markdown(args: argparse.Namespace, p: dict) -> str:
    """The results table: today's figures beside the new ones, then the breakdown of a Connect job."""
    b, rel, warm = p["baseline_before_cuts"], p["idle_executor_released"], p["warm_executor"]
    r_med, w_med = rel["median_s"], warm["median_s"]
    lines = [
        f"# {args.job}: spark-submit vs Spark Connect (one hour)\n",
        f"{args.rows:,} rows per hour, median of {args.repeats} after one warm-up each, {p['machine']['cpus']} cores, "
        "one standalone worker. `python -m bench.connect`. *Today* = before the cuts (commit 42415a1: runner "
        "imported Airflow, executor released after 15 s idle, operator polled every 2 s).\n",
        "| way | today (s) | idle executor released (s) | warm executor, the default (s) |",
        "|---|---|---|---|",
        f"| spark-submit (submit → SUCCEEDED) | {b['spark-submit']:.1f} | {r_med['spark-submit']:.1f} | – |",
        f"| Spark Connect (submit → SUCCEEDED) | {b['connect']:.1f} | {r_med['connect']:.1f} | "
        f"{w_med['connect']:.1f} |",
        f"| `run` in one already open session | {b['open session']:.1f} | {r_med['open session']:.1f} | "
        f"{w_med['open session']:.1f} |",
        f"| **ratio Connect ÷ open session** (goal ≤ 2.0) | **{b['ratio']:.2f}** | "
        f"**{rel['ratio_connect_over_open_session']:.2f}** | **{warm['ratio_connect_over_open_session']:.2f}** |",
        "",
        "## Where a Connect job's time goes (median seconds, from the runner's timestamps)\n",
        "| phase | idle executor released | warm executor | what |",
        "|---|---|---|---|",
    ]
    what = p["phases"]
    for name in dict.fromkeys([*rel["breakdown_median_s"], *warm["breakdown_median_s"]]):
        cells = [str(x["breakdown_median_s"].get(name, "–")) for x in (rel, warm)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {what.get(name, 'an executor JVM started for the job')} |")
    lines += [
        "",
        "## The server's memory (PSS, MiB)\n",
        "| | idle after start | after the jobs | peak driver JVM |",
        "|---|---|---|---|",
    ]
    for label, x in (("idle executor released", rel), ("warm executor", warm)):
        m = x["server_pss_mib"]
        lines.append(f"| {label} | {m['idle_after_start']} | {m['after_the_jobs']} | {m['peak_driver_jvm']} |")
    lines.append(
        f"\nServer start (with the cluster the first time): {rel['server_start_s']} s / {warm['server_start_s']} s."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
