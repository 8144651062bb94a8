"""A benchmark ended by Ctrl-C (SIGINT), ``kill`` (SIGTERM) or a closed terminal leaves no process of its world.

Found in review: a benchmark interrupted with Ctrl-C left its world's stack (moto, the GCS emulator, Azurite,
Spark, Airflow) running for 20 minutes. The world's servers run in sessions of their own, so a signal to
the benchmark's process group reaches only the benchmark; :func:`bench.common.own_world` must stop them on
the way out, also when a second Ctrl-C comes while it waits for start-up threads or stops the world, and
when SIGTERM / SIGHUP would end Python without running any ``finally``.

Each case runs tests/support/world_child.py (``own_world`` plus the three emulators, started in threads as
``stack up`` starts them) in a process group of its own and signals that whole group, as a terminal's
Ctrl-C does. What survives is found here with psutil, independently of the code under test: every process
started with the child world's ``TRICLOUD_STATE_DIR`` or naming its directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def processes_of(state: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["environ", "cmdline"]):
        env, cmd = proc.info["environ"] or {}, proc.info["cmdline"] or []
        if env.get("TRICLOUD_STATE_DIR") == state or any(state in arg for arg in cmd):
            found.append(proc)
    return found


def wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@pytest.mark.parametrize(
    ("when", "sig", "repeat_s"),
    [
        # An impatient user: Ctrl-C during start-up, then again every 0.1 s for 3 s, through the clean-up.
        pytest.param("starting", signal.SIGINT, 3.0, id="ctrl-c-again-and-again-during-start-up"),
        pytest.param("ready", signal.SIGINT, 0.0, id="ctrl-c-once-started"),
        pytest.param("ready", signal.SIGTERM, 0.0, id="sigterm-once-started"),
    ],
)
def test_no_process_of_the_world_survives_the_signal(tmp_path, when, sig, repeat_s):
    progress = tmp_path / "progress"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.world_child", str(progress)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: the signals below stand for a terminal's, to its whole group
    )
    state = None
    try:
        lines = wait_for(lambda: progress.exists() and progress.read_text().splitlines(), "the world")
        state = lines[0]
        wait_for(lambda: when in progress.read_text().splitlines(), when)
        wait_for(lambda: processes_of(state), "a process of the world")  # something to leave behind
        os.killpg(child.pid, sig)
        until = time.monotonic() + repeat_s
        while time.monotonic() < until and child.poll() is None:
            time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):  # the group is gone once the child exited
                os.killpg(child.pid, sig)
        output, _ = child.communicate(timeout=120)
        survivors = [(p.pid, p.info["cmdline"]) for p in processes_of(state)]
        assert survivors == [], output[-3000:]
        assert child.returncode != 0  # it was interrupted, not finished
        assert not Path(state).exists()  # and its directory removed
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for proc in processes_of(state) if state else []:  # never leave a failed case's servers running
            proc.kill()
