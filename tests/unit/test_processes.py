"""stack.processes.ManagedProcess: start once, stop by process group, leave nothing behind."""

from __future__ import annotations

import sys
import time

from stack.processes import ManagedProcess

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


class TestManagedProcess:
    def test_stop_returns_when_the_process_exits_not_at_the_timeout(self, tmp_path):
        # Started by this process, so the exited leader stays a zombie until reaped: before the fix
        # stop() waited for the whole timeout (120 s here; 30 s per Airflow component in the suite).
        proc = ManagedProcess("sleeper", SLEEPER, tmp_path, 0, {})
        assert proc.start() is True
        assert proc.pid() is not None
        t0 = time.monotonic()
        assert proc.stop(timeout=120) is True
        assert time.monotonic() - t0 < 60
        assert proc.pid() is None
        assert not (tmp_path / "sleeper" / "sleeper.pid").exists()

    def test_start_is_a_no_op_while_it_runs(self, tmp_path):
        proc = ManagedProcess("sleeper", SLEEPER, tmp_path, 0, {})
        try:
            assert proc.start() is True
            first = proc.pid()
            assert proc.start() is False
            assert proc.pid() == first
        finally:
            proc.stop()
