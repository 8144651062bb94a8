"""Benchmark: customer_enrichment's wall time for one hour through Airflow versus the same steps by hand.

By hand = the two spark-submit jobs in parallel (same Spark conf, same cluster), the enrichment
function, replication to the three clouds in parallel with the warehouse load, then verification:
what the DAG runs, without Airflow. Both on an embedded stack of the benchmark's own (own ports,
clouds and lake, never `.env`'s), in the same run, on the same generated hours; median of
``--repeats``. Also the stack's peak memory.

    make bench            (or: python -m bench.pipeline --rows 100000 --repeats 3)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

from bench.common import MemorySampler, machine, median, own_world, write_results
from include import generate
from include.enrichment import enrich_hour
from stack.__main__ import spark_backend, up
from stack.airflow import LocalAirflow, RestClient

DAG_ID = "customer_enrichment"
FIRST_HOUR = datetime(2026, 1, 1, 0, tzinfo=UTC)  # the DAG start_date: earlier runs get no tasks


def stack_pids(env: dict[str, str]) -> list[int]:
    pids = list(spark_backend(env).pids().values())
    return pids + LocalAirflow(env).pids()


def by_hand(env: dict[str, str], hour: datetime) -> float:
    from tricloud import settings
    from tricloud.spark_conf import SHORT_JOB_CONF

    start, end = hour.isoformat(), (hour + timedelta(hours=1)).isoformat()
    conf = [a for k, v in SHORT_JOB_CONF.items() for a in ("--conf", f"{k}={v}")]
    master = f"spark://{urllib.parse.urlsplit(env['AIRFLOW_CONN_SPARK_DEFAULT']).netloc}"
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "spark-submit",
                "--master",
                master,
                *conf,
                settings.job_path(job),
                "--lake-root",
                env["LAKE_ROOT"],
                "--start",
                start,
                "--end",
                end,
            ],
            env={**os.environ, **settings.python_env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for job in ("ingest_customers", "ingest_products")
    ]
    if any(p.wait() for p in procs):
        raise RuntimeError("a spark-submit failed")
    after_spark(env, hour)
    return time.perf_counter() - t0


def after_spark(env: dict[str, str], hour: datetime) -> None:
    """What the DAG does after the two ingest jobs, without Airflow: the enrichment, one hashing pass, the
    three clouds in parallel with the warehouse load, then verification. Raises when verification fails."""
    from concurrent.futures import ThreadPoolExecutor

    from include.replication import hour_digests, replicate_hour, verify_hour
    from tricloud.replication.stores import stores_from_env
    from tricloud.warehouse import load_hour

    enrich_hour(env["LAKE_ROOT"], hour)
    hour_digests(env["LAKE_ROOT"], hour)
    stores = stores_from_env()
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(replicate_hour, s, env["LAKE_ROOT"], hour) for s in stores]
        jobs.append(pool.submit(load_hour, "warehouse_default", env["LAKE_ROOT"], hour))
        for j in jobs:
            j.result()
    if verify_hour(stores, env["LAKE_ROOT"], hour).problems:
        raise RuntimeError("verification failed")


def through_airflow(client: RestClient, hour: datetime) -> float:
    logical = (hour + timedelta(hours=1)).isoformat()
    run_id = f"bench__{hour:%Y%m%dT%H}__{time.time_ns()}"
    t0 = time.perf_counter()
    client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": logical})
    while True:
        state = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - t0
    if state != "success":
        raise RuntimeError(f"run {run_id} {state}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    with own_world("pipeline") as env:
        run(env, args)


def run(env: dict[str, str], args: argparse.Namespace) -> None:
    # Like for like: the DAG's jobs through spark-submit, as by hand (bench.hour_ratio compares Connect).
    env["TRICLOUD_SPARK_SUBMIT_MODE"] = os.environ["TRICLOUD_SPARK_SUBMIT_MODE"] = "spark-submit"
    up(env)
    airflow = LocalAirflow(env)
    client = RestClient(airflow.url, "admin", airflow.admin_password() or "")
    client.wait_for_dag(DAG_ID)

    # Fresh hours every invocation (the metadata DB keeps one run per logical date).
    # Past hours only: a manual run with a future logical date waits for it.
    base = FIRST_HOUR + timedelta(hours=int(time.time() // 60) % 7_000)
    hours = [base + timedelta(hours=i) for i in range(args.repeats)]
    for h in hours:
        generate.generate_hour(env["LAKE_ROOT"], h, rows=args.rows)

    hand, dag = [], []
    with MemorySampler(stack_pids(env)) as mem:
        for h in hours:
            hand.append(by_hand(env, h))
            dag.append(through_airflow(client, h))
            print(f"{h:%Y-%m-%dT%H}: by hand {hand[-1]:.1f}s, Airflow {dag[-1]:.1f}s", flush=True)
    ratio = median(dag) / median(hand)
    payload = {
        "benchmark": "customer_enrichment one hour: Airflow DAG vs the same steps by hand",
        "rows_per_hour": args.rows,
        "repeats": args.repeats,
        "by_hand_s": hand,
        "airflow_s": dag,
        "median_by_hand_s": median(hand),
        "median_airflow_s": median(dag),
        "ratio_airflow_over_hand": round(ratio, 3),
        "target_ratio": 1.25,
        "peak_stack_rss_mib": round(mem.peak_rss / 2**20),
        "peak_stack_pss_mib": round(mem.peak_pss / 2**20),
        "machine": machine(),
    }
    md = (
        "# customer_enrichment: Airflow vs by hand (one hour)\n\n"
        f"{args.rows:,} customer rows per hour, median of {args.repeats}, {payload['machine']['cpus']} cores.\n\n"
        "| path | median wall time (s) |\n|---|---|\n"
        f"| by hand (2× spark-submit ∥, enrichment, 3 clouds ∥ + warehouse, verify) | {median(hand):.1f} |\n"
        f"| Airflow DAG (trigger → success) | {median(dag):.1f} |\n"
        f"| **ratio** (target ≤ 1.25) | **{ratio:.2f}** |\n\n"
        f"Peak memory of the whole stack during the runs (local Airflow + Spark master/worker + jobs): "
        f"RSS {payload['peak_stack_rss_mib']} MiB, PSS {payload['peak_stack_pss_mib']} MiB.\n"
    )
    write_results("pipeline", payload, md)


if __name__ == "__main__":
    main()
