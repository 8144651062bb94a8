"""Which processes `stack.world.strays` counts as a benchmark world's (and so stops after a Ctrl-C).

Real processes: `sleep` started in the world's directory without a terminal (as the world's servers are), a
`sleep` with a controlling terminal there (a user's shell or `tail -f` on a log), and one in a sibling directory
whose name starts with the world's.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from stack.world import strays


def _started(proc_pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(proc_pid).cmdline()[:1] == ["sleep"]:
                return
        except psutil.Error:
            pass
        time.sleep(0.05)
    raise AssertionError(f"pid {proc_pid} did not exec sleep")


@pytest.fixture
def world(tmp_path: Path):
    state = tmp_path / "world"
    sibling = tmp_path / "worldX"
    state.mkdir()
    sibling.mkdir()
    servers = subprocess.Popen(["sleep", "60"], cwd=state, start_new_session=True)  # no terminal
    neighbour = subprocess.Popen(["sleep", "60"], cwd=sibling, start_new_session=True)
    pid, fd = pty.fork()  # the child gets the pty as its controlling terminal
    if pid == 0:  # never return into pytest from the child, also when exec fails
        try:
            os.chdir(state)
            os.execvp("sleep", ["sleep", "60"])
        finally:
            os._exit(127)
    for p in (servers.pid, neighbour.pid, pid):
        _started(p)
    yield state, servers.pid, neighbour.pid, pid
    for p in (servers.pid, neighbour.pid, pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    servers.wait()
    neighbour.wait()
    os.waitpid(pid, 0)
    os.close(fd)


def test_a_server_of_the_world_is_found_and_a_users_terminal_or_a_sibling_directory_is_not(world):
    state, server, neighbour, with_terminal = world
    assert psutil.Process(with_terminal).terminal() is not None  # the case is what it claims
    found = {p.pid for p in strays(state)}
    assert server in found
    assert with_terminal not in found
    assert neighbour not in found
