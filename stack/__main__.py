"""Command line of the embedded stack: ``python -m stack {up,down,status,demo,env,airflow ...}``.

``python -m stack airflow <args>`` runs the ``airflow`` CLI with the stack's environment (home, DAGs
folder, secrets), e.g. ``python -m stack airflow dags trigger customer_enrichment --logical-date …``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from stack import config
from stack.airflow import LocalAirflow, RestClient
from stack.clock import PhaseClock
from stack.emulators import create_buckets, emulators

DAG_ID = "customer_enrichment"


def spark_backend(env: dict[str, str]):
    sys.path.insert(0, str(config.ROOT / "plugins"))
    from tricloud.cluster.local import LocalStandaloneBackend

    uri = env.get("AIRFLOW_CONN_SPARK_DEFAULT")
    if not uri:
        sys.exit("AIRFLOW_CONN_SPARK_DEFAULT is not set: add it to .env (see .env.example)")
    parsed = urllib.parse.urlsplit(uri)
    return LocalStandaloneBackend(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 7077,
        state_dir=env["TRICLOUD_STATE_DIR"],
        mode=env.get("TRICLOUD_SPARK_SUBMIT_MODE") or None,
    )


def up(
    env: dict[str, str], clock: PhaseClock | None = None, before_airflow: Callable[[], object] | None = None
) -> None:
    """Start Spark, the emulators (and their buckets) and Airflow, each unless it already runs.

    Spark, the emulators, Airflow's DB migration and ``before_airflow`` (e.g. the demo writing its hour)
    run side by side in threads (each mostly waits: a JVM start, a port, SQLite); Airflow's components
    start once all of them are done. ``clock`` records the two phases (see :mod:`stack.clock`).
    """
    config.apply(env)  # the Spark backend reads SPARK_* from the environment
    initialise_airflow()  # after config.apply: Airflow reads its settings from the environment on import
    clock = clock or PhaseClock()
    airflow = LocalAirflow(env)
    with clock.phase("stack start (Spark ∥ emulators ∥ Airflow DB migrate ∥ data)"), ThreadPoolExecutor(4) as pool:
        spark = pool.submit(spark_backend(env).start)
        emulators_started = pool.submit(start_emulators, env)
        migrated = pool.submit(airflow.prepare)
        extra = pool.submit(before_airflow) if before_airflow else None
        info, started, to_launch = spark.result(), emulators_started.result(), migrated.result()
        if extra:
            extra.result()
    print(f"Spark    {'started' if info.started else 'running'}: {info.master_url}  (UI {info.ui_url})")
    if info.details.get("connect_url"):
        print(f"Spark Connect server: {info.details['connect_url']}")
    for name, port, was_started in started:
        print(f"{name:<8} {'started' if was_started else 'running'}: 127.0.0.1:{port}")
    with clock.phase("Airflow first start (components → healthy)"):
        if to_launch:
            airflow.launch()
    print(f"Airflow  {'started' if to_launch else 'running'}: {airflow.url}  ({time.time() - clock.started:.0f}s)")


def initialise_airflow() -> None:
    """Import Airflow once, in the calling thread, before :func:`up`'s threads import provider hooks.

    ``import airflow`` initialises Airflow (its settings, then its logging config, which imports more of
    ``airflow``). Two threads importing it for the first time at once deadlock on Python's module locks
    and one of them fails ("partially initialized module 'airflow' has no attribute 'utils'", "deadlock
    detected by _ModuleLock('airflow.providers.google')"): :func:`up`'s Spark thread imports the Spark
    Connect hook and its emulator thread the cloud hooks. With bytecode compiled they rarely met; on a
    fresh clone's first ``make demo`` (no bytecode yet, slow imports) they did, and the demo failed.
    tests/unit/test_stack_imports.py reproduces it with an empty bytecode cache.
    """
    import airflow  # noqa: F401


def start_emulators(env: dict[str, str]) -> list[tuple[str, int, bool]]:
    """Start each emulator unless running, then create the replica bucket in each: (name, port, started)."""
    out = [(proc.name, proc.port, proc.start()) for proc in emulators(env)]
    create_buckets(env)
    return out


def down(env: dict[str, str]) -> None:
    """Stop Airflow, Spark and the emulators, each tried even when an earlier one failed to stop.

    :raises RuntimeError: naming every component that failed to stop (after all were tried).
    """
    config.apply(env)
    failed: list[str] = []

    def attempt(name: str, stop) -> bool:
        try:
            return bool(stop())
        except (Exception, SystemExit) as err:  # one component's failure must not leave the others running
            failed.append(f"{name}: {type(err).__name__}: {err}")
            return False

    # Built inside the attempt: a bad setting (TRICLOUD_TRIGGERER, the Spark mode) must not keep the rest running.
    stopped_airflow = attempt("airflow", lambda: LocalAirflow(env).stop())
    stopped_spark = attempt("spark", lambda: spark_backend(env).stop())
    for proc in emulators(env):
        attempt(proc.name, proc.stop)
    print(
        f"Stopped: airflow={'yes' if stopped_airflow else 'not running'}, "
        f"spark={'yes' if stopped_spark else 'not running'}"
    )
    if failed:
        raise RuntimeError("could not stop: " + "; ".join(failed) + " (see `python -m stack status`)")


def status(env: dict[str, str]) -> None:
    config.apply(env)
    st = spark_backend(env).status()
    airflow = LocalAirflow(env)
    print(f"Spark:   alive={st.alive} workers={st.workers} active_apps={st.active_apps}")
    print(f"Airflow: pids={airflow.pids()} healthy={airflow.healthy()} url={airflow.url}")
    for proc in emulators(env):
        print(f"{proc.name + ':':<8} pid={proc.pid()} listening={proc.ready()} port={proc.port}")


def demo(env: dict[str, str], rows: int | None) -> PhaseClock:
    """Run the latest complete hour through the DAG on the embedded stack and print its summary and the
    time of each phase; returns the phases (for bench.demo_phases)."""
    from include.generate import generate_hour

    # The install phase, timed by the Makefile (absent when run as `python -m stack demo`).
    clock = PhaseClock.from_env(os.environ.get("TRICLOUD_DEMO_CLOCK"))
    hour_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hour = hour_end - timedelta(hours=1)
    rows = rows or int(env.get("DEMO_ROWS", "100000"))
    generated = []
    # The data before Airflow's components start: on a fresh stack the scheduler starts this hour's run
    # as soon as it is up; it is written while Spark, the emulators and the DB migration start.
    up(env, clock, before_airflow=lambda: generated.append(generate_hour(env["LAKE_ROOT"], hour, rows=rows)))
    gen = generated[0]
    print(
        f"Data     {gen.customer_rows:,} customer rows, {gen.product_rows:,} catalog lines for [{hour:%H:%M}, "
        f"{hour_end:%H:%M}) UTC"
    )

    airflow = LocalAirflow(env)
    client = RestClient(airflow.url, "admin", airflow.admin_password() or "")
    with clock.phase("first DAG parse (DAG in the API)"):
        client.wait_for_dag(DAG_ID)
    with clock.phase("the hour (trigger or follow → run ended)"):
        run_id = run_for_hour(client, env, hour, hour_end)
        state = watch(client, run_id)
    summary_file = (
        config.Path(env["LAKE_ROOT"]) / f"enriched/customer_hourly/date={hour:%Y-%m-%d}/hour={hour:%H}/_summary.json"
    )
    print()
    if state != "success":
        sys.exit(f"Run {run_id} ended {state}: open {airflow.url}/dags/{DAG_ID} for the task logs")
    with clock.phase("summary"):
        print_summary(env, client, airflow, json.loads(summary_file.read_text()), hour, run_id)
    print(clock.table())
    return clock


def print_summary(env: dict[str, str], client: RestClient, airflow: LocalAirflow, summary: dict, hour, run_id) -> None:
    print(processed_by(env, hour, run_id))
    cust = summary["upstream"]["customer_activity"]
    prod = summary["upstream"]["product_catalog"]
    print("Summary")
    print(
        f"  customer rows in   {cust['rows_in']:>10,}   cleaned {cust['rows_clean']:,}   rejected {cust['rows_rejected']:,}"
    )
    print(f"    rejects by reason {json.dumps(cust['rejected_by_reason'], sort_keys=True)}")
    print(
        f"  catalog lines in   {prod['rows_in']:>10,}   cleaned {prod['rows_clean']:,}   rejected {prod['rows_rejected']:,}"
    )
    print(
        f"  orders joined      {summary['orders_joined']:>10,}   unknown product {summary['orders_rejected_unknown_product']:,}"
    )
    print(f"  customers enriched {summary['customers_out']:>10,}   spend {summary['total_spend']:,.2f}")
    bucket = env.get("REPLICA_BUCKET")
    for cloud in ("s3", "gcs", "azure"):
        res = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/replicate_to_{cloud}")
        xcom = client.call(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/replicate_to_{cloud}/xcomEntries/return_value"
        )["value"]
        print(
            f"  replica {cloud:<10} {xcom['objects']:>10} objects  {xcom['bytes_uploaded']:,} bytes sent, "
            f"{xcom['skipped']} unchanged  ({cloud}://{bucket}/, task {res['state']})"
        )
    print(f"  outputs            {env['LAKE_ROOT']}/{{clean,rejects,enriched}}/…/date={hour:%Y-%m-%d}/hour={hour:%H}/")
    print(
        f"  web UI             {airflow.url}/dags/{DAG_ID}  (user admin, password {airflow.admin_password()}"
        f" from {airflow.home}/simple_auth_manager_passwords.json.generated)"
    )
    print("  stop everything    make stop")


def run_for_hour(client: RestClient, env: dict[str, str], hour: datetime, hour_end: datetime) -> str:
    """The run that will process [hour, hour_end): the scheduler's (or an earlier demo's) if there is one,
    else a new manual run. One run per hour: a second one would only wait for the first (claim_hour)
    and then process the hour again."""
    run = existing_run(client, hour, hour_end)
    if run is None and scheduler_starts(client, hour):
        print("Waiting  for the scheduler's run of this hour (the DAG is unpaused: it starts the latest hour)")
        deadline = time.monotonic() + 60
        while run is None and time.monotonic() < deadline:
            time.sleep(1)
            run = existing_run(client, hour, hour_end)
    if run is None:
        # Once more, right before triggering (and after the deadline above): the scheduler may just
        # have started the hour's run. A run started after this look only waits in claim_hour.
        run = existing_run(client, hour, hour_end)
    if run is not None and run["state"] in ("queued", "running"):
        print(f"Follow   {run['dag_run_id']} (already processing this hour: no second run)")
        return run["dag_run_id"]
    if run is not None:
        # The hour ran before (e.g. `make demo` twice within an hour): re-run it in place.
        client.call("POST", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/clear", {"dry_run": False})
        print(f"Re-run   {run['dag_run_id']} (cleared: the hour was processed before)")
        return run["dag_run_id"]
    run_id = f"demo__{hour:%Y-%m-%dT%H}"
    # CronDataIntervalTimetable: a manual run at logical date T processes the hour that ends at T.
    # Through the REST API (the client is logged in already): the CLI costs 3-4 s of imports.
    client.call("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": hour_end.isoformat()})
    print(
        f"Trigger  run {run_id} (REST; the same as `python -m stack airflow dags trigger {DAG_ID} "
        f"--logical-date {hour_end.isoformat()}`)"
    )
    return run_id


def existing_run(client: RestClient, hour: datetime, hour_end: datetime) -> dict | None:
    """A run of [hour, hour_end): scheduled or backfilled (logical date = the hour's start) or manual with
    the logical date at its end (as the demo triggers it)."""
    lo, hi = (urllib.parse.quote(t.isoformat()) for t in (hour, hour_end))
    runs = client.call("GET", f"/dags/{DAG_ID}/dagRuns?logical_date_gte={lo}&logical_date_lte={hi}")["dag_runs"]
    for run in runs:
        logical = _ts(run["logical_date"])
        if (run["run_type"] != "manual" and logical == hour) or (run["run_type"] == "manual" and logical == hour_end):
            return run
    return None


def scheduler_starts(client: RestClient, hour: datetime) -> bool:
    """Whether the scheduler is about to start the run of ``hour`` itself (unpaused, next interval due)."""
    dag = client.call("GET", f"/dags/{DAG_ID}")
    start = dag.get("next_dagrun_data_interval_start")
    due = dag.get("next_dagrun_run_after")
    if dag.get("is_paused") or not start or not due:
        return False
    return _ts(start) == hour and _ts(due) <= datetime.now(UTC)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def processed_by(env: dict[str, str], hour: datetime, run_id: str) -> str:
    """Which run wrote the hour, from its lease (the last run that claimed it), checked against the
    watched ``run_id``: when another run claimed the hour after it, that run is the one that wrote it."""
    from include.lease import HourLease

    lease = HourLease(env["LAKE_ROOT"], DAG_ID, hour)
    top = lease.current()
    if top is None:
        return f"Hour     [{hour:%H:%M}, +1h) has no lease record: processed by run {run_id}"
    others = [r.run_id for r in lease.history() if r.run_id != top.run_id]
    waited = f"; earlier runs of this hour: {', '.join(dict.fromkeys(others))}" if others else ""
    line = f"Hour     processed by run {top.run_id} (lease generation {top.generation}{waited})"
    if top.run_id != run_id:
        line += f"; not by the watched run {run_id}: {top.run_id} claimed the hour after it and wrote it last"
    return line


def watch(client: RestClient, run_id: str, timeout: float = 900) -> str:
    seen: dict[str, str] = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        run = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        tis = client.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
        for ti in sorted(tis, key=lambda t: t["task_id"]):
            state = ti["state"] or "none"
            if seen.get(ti["task_id"]) != state:
                seen[ti["task_id"]] = state
                print(f"  {time.monotonic() - t0:6.1f}s  {ti['task_id']:<24} {state}", flush=True)
        if run["state"] in ("success", "failed"):
            print(f"  {time.monotonic() - t0:6.1f}s  run {run['state']}")
            return run["state"]
        time.sleep(0.5)  # was 2 s: up to 2 s of the demo's hour was spent here after the run ended
    return "timeout"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "demo", "env", "airflow"])
    parser.add_argument("--rows", type=int, help="customer rows for the demo hour (default DEMO_ROWS)")
    args, rest = parser.parse_known_args(argv)
    env = config.stack_env()
    if args.command == "airflow":
        os.execvpe("airflow", ["airflow", *rest], env)  # noqa: S606 -- replace this process: exit code, signals, tty
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "env":
        for key in sorted(env):
            print(f"{key}={'***' if 'SECRET' in key or 'FERNET' in key else env[key]}")
        return
    {"up": up, "down": down, "status": status}.get(args.command, lambda e: demo(e, args.rows))(env)


if __name__ == "__main__":
    main()
