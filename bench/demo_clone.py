"""Benchmark: ``make demo`` on a fresh clone, as a new user runs it (issue 16: clone → first hour's summary).

Clones this repository's HEAD into a temporary directory (with ``../shared`` beside it when there is one)
and runs ``make demo`` there with empty package caches (``UV_CACHE_DIR``, ``npm_config_cache`` in the
temporary directory, ``PIP_NO_CACHE_DIR``): the venv, Azurite and (where missing, as root) Java are
installed from the package indexes, Airflow's DB is migrated, the stack started and the latest complete
hour processed, as on a new machine with the same system packages. The demo prints the time of each phase;
they are read from its output, and the wall time around ``make demo`` is measured here too. The clone's
stack is stopped with its own venv's ``python -m stack down`` (``make stop`` would reinstall after a failed
install) and the directory removed afterwards.

The demo uses ``.env.example``'s ports (8080 for the web UI …): a demo already running on this machine must
be stopped first (``make stop``); the benchmark refuses to start when any of those ports is taken. Writes
bench/results/demo_clone.{json,md}.

    flock /tmp/tricloud-heavy.lock python -m bench.demo_clone        (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import machine, write_results
from bench.demo_phases import REFERENCE_S
from stack import config
from stack.ports import bindable

#: ``make demo``'s closing table: "  <phase>   <seconds> s".
PHASE_LINE = re.compile(r"^\s{2}(?P<name>\S.*?)\s{2,}(?P<seconds>\d+(?:\.\d+)?) s$")
GOAL_S = 150


def demo_ports(settings: dict[str, str]) -> list[int]:
    """Every 127.0.0.1 port the clone's stack will use (web UI, Spark, Connect, the emulators), from its settings."""
    text = "\n".join(f"{k}={v}" for k, v in settings.items())
    found = re.findall(r'127\.0\.0\.1:(\d+)|"port": (\d+)|_PORT=(\d+)', text)
    return sorted({int(next(g for g in groups if g)) for groups in found})


def clone_env(work: Path, settings: dict[str, str]) -> dict[str, str]:
    """This process's environment for ``make demo`` in the clone, without what would steer the clone's stack.

    An exported setting wins over ``.env`` (stack/config.py), so every name ``.env.example`` sets is dropped,
    with Airflow's and Spark's own variables and this checkout's venv and ``PYTHONPATH``; the rest (proxies,
    CA bundles, package index settings of the machine) is kept. Package caches point into ``work``, empty.
    """
    drop = set(settings) | {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("AIRFLOW", "TRICLOUD_", "SPARK_", "PYSPARK_"))
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)
    env.update(
        {
            "UV_CACHE_DIR": str(work / "caches" / "uv"),
            "npm_config_cache": str(work / "caches" / "npm"),
            "PIP_NO_CACHE_DIR": "1",
        }
    )
    return env


def stop_clone(clone: Path, env: dict[str, str]) -> str:
    """Stop whatever the clone's stack started (its own venv's ``python -m stack down``; no install)."""
    python = clone / ".venv" / "bin" / "python"
    if not python.exists():
        return "no venv: nothing was started"
    try:
        out = subprocess.run(
            [str(python), "-m", "stack", "down"], cwd=clone, env=env, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        return "stack down timed out after 300 s: check for processes of the clone"
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit {out.returncode}"


def phases_from(output: str) -> dict[str, float]:
    """The "Time per phase" table ``make demo`` prints at its end: {phase: seconds}, in order."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Time per phase")
    except StopIteration:
        return {}
    phases = {}
    for line in lines[start + 1 :]:
        m = PHASE_LINE.match(line)
        if not m:
            break
        phases[m["name"]] = float(m["seconds"])
    return phases


def run(rows_note: str) -> dict:
    settings = config.parse_env_file(config.ROOT / ".env.example")  # what the clone's `make .env` copies
    if taken := [p for p in demo_ports(settings) if not bindable(p)]:
        raise SystemExit(
            f"127.0.0.1 ports {taken} are taken (a running demo?): the clone's stack uses .env.example's "
            "ports; stop it first with `make stop`"
        )
    work = Path(tempfile.mkdtemp(prefix="tricloud-demo-clone-"))
    clone = work / "main"
    env = clone_env(work, settings)
    stopped = "not started"
    try:
        subprocess.run(["git", "clone", "-q", str(config.ROOT), str(clone)], check=True)
        shared = config.ROOT.parent / "shared"
        if shared.is_dir():
            (work / "shared").symlink_to(shared)
        t0 = time.perf_counter()
        out = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        output = out.stdout + out.stderr
        if out.returncode:
            (config.ROOT / ".stack").mkdir(exist_ok=True)
            log = config.ROOT / ".stack" / "demo-clone.log"
            log.write_text(output)
            raise SystemExit(f"make demo failed on the fresh clone (exit {out.returncode}); its output: {log}")
        return {
            "benchmark": "make demo on a fresh clone, empty package caches",
            "wall_s": round(wall, 1),
            "phases_s": phases_from(output),
            "apt_get_ran": "with apt-get" in output,
            "note": rows_note,
        }
    finally:
        if clone.exists():
            stopped = stop_clone(clone, env)
        print(f"The clone's stack: {stopped}")
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--note", default="", help="a line on the conditions (e.g. other jobs beside it)")
    args = parser.parse_args(argv)
    result = run(args.note)
    payload = {**result, "reference_s": REFERENCE_S, "goal_s": GOAL_S, "machine": machine()}
    rows = "\n".join(f"| {name} | {seconds} |" for name, seconds in result["phases_s"].items())
    apt = (
        "apt-get ran (a system package was missing)"
        if result["apt_get_ran"]
        else "no apt-get: Java and Node.js were already installed"
    )
    markdown = (
        "# make demo on a fresh clone (clone → first hour's summary)\n\n"
        f"`python -m bench.demo_clone`: this repository's HEAD cloned into a temporary directory, `make demo` run "
        f"there with empty uv/pip/npm caches; {apt}. The phases are the demo's own table; the wall time is "
        f"measured around `make demo`. {result['note']}\n\n"
        "| phase | seconds |\n|---|---|\n"
        f"{rows}\n"
        f"| **wall time of `make demo` (clone → summary)** | **{result['wall_s']}** |\n\n"
        "Reference, a fresh clone before issue 16: install {install} s, Airflow's first start {first} s, the hour "
        "{hour} s, clone → summary {total} s; goal ≤ {goal} s.\n".format(
            install=REFERENCE_S["install"],
            first=REFERENCE_S["Airflow's first start"],
            hour=REFERENCE_S["the hour"],
            total=REFERENCE_S["clone → summary"],
            goal=GOAL_S,
        )
    )
    write_results("demo_clone", payload, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
