"""stack.processes.ManagedProcess and include.processes: start once, stop by process group, leave nothing behind."""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

from stack.processes import ManagedProcess

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


class TestManagedProcess:
    @pytest.mark.timeout(120)  # the failure mode is a hang: pytest-timeout ends it, no timing assertion
    def test_stop_returns_when_the_process_exits_not_at_the_timeout(self, tmp_path):
        # Started by this process, so the exited leader stays a zombie until reaped: before the fix
        # stop() waited for the whole timeout (30 s per Airflow component in the suite). With a timeout
        # of an hour, a stop() that waits for it cannot pass.
        proc = ManagedProcess("sleeper", SLEEPER, tmp_path, 0, {})
        assert proc.start() is True
        assert proc.pid() is not None
        assert proc.stop(timeout=3600) is True
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


class TestLiveness:
    """include.processes: one notion of "alive" for stack/ and the cluster code."""

    def test_an_exited_child_is_not_alive_although_kill_0_finds_its_zombie(self):
        import subprocess

        from include.processes import alive

        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        deadline = time.monotonic() + 30
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, 0)  # what the old checks asked: the zombie answers
        assert alive(proc.pid) is False

    def test_a_reused_pid_is_told_apart_by_its_start_time(self):
        from include.processes import alive, identity

        me = os.getpid()
        assert alive(me, identity(me)) is True
        assert alive(me, identity(me) - 5.0) is False  # "this pid, but started 5 s earlier": not us
        assert alive(None) is False and alive(0) is False

    def test_read_pid_gives_only_a_live_process(self, tmp_path):
        from include.processes import read_pid, write_pid

        path = tmp_path / "x" / "p.pid"
        assert read_pid(path) is None  # no file
        write_pid(path, os.getpid())
        assert read_pid(path) == os.getpid()
        path.write_text("garbage")
        assert read_pid(path) is None
        dead = psutil.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        write_pid(path, dead.pid)
        assert read_pid(path) is None

    def test_stop_group_stops_leader_and_children_and_says_when_nothing_was_there(self):
        import subprocess

        from include.processes import group_alive, stop_group

        # A leader that ignores SIGTERM and a child: both must be gone (SIGKILL after the timeout).
        code = (
            "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        deadline = time.monotonic() + 30
        while not psutil.Process(proc.pid).children():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = psutil.Process(proc.pid).children()[0].pid
        assert stop_group(proc.pid, timeout=1) is True
        assert not group_alive(proc.pid)
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert stop_group(proc.pid, timeout=1) is False  # already gone: nothing to stop
