"""`make test` beside a running `make demo`: the suite leaves the demo's lake and clouds byte-identical.

A user's checkout (a copy of this one, with a `.env` of its own) runs its demo's three clouds and has
replicated an hour to them. In that checkout, as the user would, a slice of the suite that replicates,
restores and even stops an emulator runs. Afterwards every object of every bucket and container of
the demo's clouds, every file of its lake, and its emulator processes are what they were.

``TRICLOUD_DEMO_SOURCE`` copies another source tree instead of this checkout (e.g. an export of an
older commit, to see this test fail against code that took its environment from `.env`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack import config, ports
from tests.support import demo_checkout

pytestmark = [pytest.mark.e2e]

SCRIPT = Path(demo_checkout.__file__)
SLICE = ["tests/integration/test_replication.py", "-k", "restore or emulator_down"]


def as_user(checkout: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return out


def summary_counts(stdout: str) -> dict[str, int]:
    """Outcome counts of pytest's final summary line (``4 passed, 1 skipped in 9.1s`` → passed 4, skipped 1)."""
    lines = [line for line in stdout.splitlines() if re.search(r"\d+ \w+.* in [\d.]+s", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1])} if lines else {}


@pytest.fixture
def demo(tmp_path, shell_env):
    """A user's checkout with its demo's clouds running; (checkout, run a demo_checkout command)."""
    source = Path(os.environ.get("TRICLOUD_DEMO_SOURCE") or config.ROOT)
    chosen = ports.free_ports(9)
    checkout = demo_checkout.copy_checkout(source, tmp_path / "checkout", chosen)

    def run(command: str) -> str:
        out = as_user(checkout, shell_env, str(SCRIPT), command)
        assert out.returncode == 0, f"demo_checkout {command}:\n{out.stderr[-3000:]}"
        return out.stdout

    run("up")
    try:
        yield checkout, run
    finally:
        run("down")
        ports.release(chosen)


def test_a_replicate_and_restore_slice_leaves_the_demos_lake_and_clouds_byte_identical(demo, shell_env):
    checkout, run = demo
    run("seed")
    before = json.loads(run("snapshot"))
    # The demo's hour is in its lake and, with its manifest, in each of its three clouds.
    assert len(before["lake"]) >= 4
    assert len(before["s3"]) == len(before["gcs"]) == len(before["azure"]) >= 4
    assert all(before["emulator_pids"].values())

    suite = as_user(checkout, shell_env, "-m", "pytest", *SLICE, "-q", "-p", "no:cacheprovider", timeout=900)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    counts = summary_counts(suite.stdout)
    # The slice really replicated and restored: nothing failed or errored, nothing was only skipped.
    assert counts.get("failed", 0) == counts.get("error", 0) == counts.get("errors", 0) == 0, counts
    assert counts.get("passed", 0) >= 4, counts

    after = json.loads(run("snapshot"))
    changed = [part for part in ("lake", "s3", "gcs", "azure", "emulator_pids") if after[part] != before[part]]
    assert changed == [], {part: (before[part], after[part]) for part in changed}
