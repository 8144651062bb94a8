"""Benchmark: one hour's ingest job through spark-submit vs through the Spark Connect server vs one open session.

Three ways to run the same job module (``include/jobs/ingest_customers.py`` by default) on the same
cluster, each on freshly generated hours of its own:

- **spark-submit**: the local backend in ``spark-submit`` mode (detached runner, SparkSubmitHook, a new
  driver JVM and executor per job), the DAG's Spark settings (``tricloud.spark_conf.SHORT_JOB_CONF``);
- **connect**: the local backend in ``connect`` mode (detached runner, a new session of the running
  Connect server per job): submit → SUCCEEDED, as the operator sees it;
- **open session**: the job's ``run(spark, argv)`` called in one Connect session opened beforehand, the
  reference of issue 16's goal "that hour ÷ the same Spark work in one already-open session ≤ 2.0".

Also the Connect server's memory (PSS of its driver JVM and executors, psutil) while it works and idle.
Runs in a world of its own (own ports, cluster, lake); median of ``--repeats`` after one warm-up each.

    python -m bench.connect --rows 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psutil

from bench.common import MemorySampler, machine, median, own_world, write_results
from include import generate

FIRST_HOUR = datetime(2026, 3, 1, 0, tzinfo=UTC)


def job_args(env: dict[str, str], hour: datetime) -> list[str]:
    end = hour + timedelta(hours=1)
    return ["--lake-root", env["LAKE_ROOT"], "--start", hour.isoformat(), "--end", end.isoformat()]


def through_backend(backend, job_name: str, env: dict[str, str], hour: datetime) -> float:
    """Submit → SUCCEEDED wall seconds of one job on ``backend`` (its mode decides how it runs)."""
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
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    if status.state is not JobState.SUCCEEDED:
        raise RuntimeError(backend.driver_error(handle, status))
    return elapsed


def in_open_session(spark, job_name: str, env: dict[str, str], hour: datetime) -> float:
    """Wall seconds of the job's ``run`` in the already open session ``spark``."""
    import importlib

    module = importlib.import_module(f"include.jobs.{job_name}")
    t0 = time.perf_counter()
    module.run(spark, job_args(env, hour))
    return time.perf_counter() - t0


def server_pss(backend, app_id: str | None) -> int:
    """PSS bytes of the Connect server: its driver JVM and the executors of its application ``app_id``."""
    pid = backend.pids().get("connect")
    total = 0
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)] if pid else []
    worker = backend.pids().get("worker-0")  # executors are children of the worker: count the server's own
    if worker and app_id:
        for child in psutil.Process(worker).children(recursive=True):
            try:
                if app_id in " ".join(child.cmdline()):
                    procs.append(child)
            except psutil.Error:  # an executor that just ended
                continue
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--job", default="ingest_customers", choices=["ingest_customers", "ingest_products"])
    args = parser.parse_args(argv)
    with own_world("connect") as env:
        run(env, args)


def run(env: dict[str, str], args: argparse.Namespace) -> None:
    from pyspark.sql import SparkSession

    from include.jobs import common
    from tricloud.cluster.local import LocalStandaloneBackend

    backends = {
        mode: LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1, mode=mode)
        for mode in ("spark-submit", "connect")
    }
    t0 = time.perf_counter()
    backends["connect"].start()
    start_s = time.perf_counter() - t0
    spark = SparkSession.builder.remote(backends["connect"].connect_endpoint()[2]).create()
    common.configure(spark)
    app_id = common.application_id(spark)
    idle_pss = server_pss(backends["connect"], app_id)
    n = args.repeats + 1  # one warm-up per way, not counted
    hours = [FIRST_HOUR + timedelta(hours=i) for i in range(3 * n)]
    for h in hours:
        generate.generate_hour(env["LAKE_ROOT"], h, rows=args.rows)
    ways = {"spark-submit": [], "connect": [], "open session": []}
    try:
        with MemorySampler([backends["connect"].pids()["connect"]]) as mem:
            for i in range(n):
                h = hours[3 * i : 3 * i + 3]
                times = {
                    "spark-submit": through_backend(backends["spark-submit"], args.job, env, h[0]),
                    "connect": through_backend(backends["connect"], args.job, env, h[1]),
                    "open session": in_open_session(spark, args.job, env, h[2]),
                }
                print(", ".join(f"{k} {v:.1f}s" for k, v in times.items()), "(warm-up)" if i == 0 else "", flush=True)
                if i:
                    for k, v in times.items():
                        ways[k].append(v)
                busy_pss = server_pss(backends["connect"], app_id)
    finally:
        spark.stop()  # its gRPC threads would keep the process alive
    med = {k: median(v) for k, v in ways.items()}
    ratio = med["connect"] / med["open session"]
    payload = {
        "benchmark": f"{args.job}: spark-submit vs Spark Connect job vs one open session",
        "rows_per_hour": args.rows,
        "repeats": args.repeats,
        "seconds": ways,
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "ratio_connect_over_open_session": round(ratio, 3),
        "target_ratio": 2.0,
        "ratio_spark_submit_over_open_session": round(med["spark-submit"] / med["open session"], 3),
        "connect_server_start_s": round(start_s, 1),
        "connect_server_pss_mib": {
            "idle_after_start": round(idle_pss / 2**20),
            "after_the_jobs": round(busy_pss / 2**20),
            "peak_driver_jvm": round(mem.peak_pss / 2**20),
        },
        "machine": machine(),
    }
    pss = payload["connect_server_pss_mib"]
    md = (
        f"# {args.job}: spark-submit vs Spark Connect (one hour)\n\n"
        f"{args.rows:,} rows per hour, median of {args.repeats} after one warm-up, {payload['machine']['cpus']} cores, "
        "one standalone worker. `python -m bench.connect`.\n\n"
        "| way | median wall time (s) |\n|---|---|\n"
        f"| spark-submit (local backend, submit → SUCCEEDED) | {med['spark-submit']:.1f} |\n"
        f"| Spark Connect (local backend, submit → SUCCEEDED) | {med['connect']:.1f} |\n"
        f"| the job's `run` in one already open session | {med['open session']:.1f} |\n"
        f"| **ratio Connect ÷ open session** (goal ≤ 2.0) | **{ratio:.2f}** |\n"
        f"| ratio spark-submit ÷ open session | {payload['ratio_spark_submit_over_open_session']:.2f} |\n\n"
        f"Connect server: started in {start_s:.1f} s (with the cluster); PSS {pss['idle_after_start']} MiB idle "
        f"after start, {pss['after_the_jobs']} MiB after the jobs (driver JVM + its executor while it has one), "
        f"peak of its driver JVM {pss['peak_driver_jvm']} MiB.\n"
    )
    write_results("connect", payload, md)


if __name__ == "__main__":
    main()
