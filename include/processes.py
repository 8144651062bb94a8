"""Process liveness, reaping, pid files and group stops: the one helper of ``stack/`` and the cluster code.

Built on psutil. Three rules every caller needs and earlier copies got partly wrong:

- a **zombie** (exited, not yet reaped by its parent) is not alive, although ``kill(pid, 0)`` finds it;
- an exited **child of this process** is reaped first (``waitpid(WNOHANG)``), else its process group
  "exists" until the parent exits and a stop would wait for its whole timeout;
- a pid recorded long ago may belong to **another process** by now: a recorded ``create_time``
  (:func:`identity`) tells them apart.

No Airflow here (``stack/`` imports it too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil

#: psutil's create_time is a float of seconds; two reads of the same process agree to well within this.
_SAME_PROCESS_TOLERANCE = 0.01


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is an exited child of this process (no-op otherwise)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def identity(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), to recognise it later; None if it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(pid: int | None, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``create_time``, is still that same process."""
    if not pid or pid <= 0:
        return False
    reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - create_time) > _SAME_PROCESS_TOLERANCE:
            return False  # the pid was reused by another process
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else
    return True


def read_pid(path: Path) -> int | None:
    """The pid in the pid file ``path`` if that process is alive; None if no file, garbage or dead."""
    try:
        pid = int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def write_pid(path: Path, pid: int) -> None:
    """Write ``pid`` to the pid file ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(pid))


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is still alive (zombies and reaped children excluded)."""
    reap(pgid)
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, OSError):
            continue
    return False


def stop_group(pgid: int, timeout: float = 15.0, poll: float = 0.1) -> bool:
    """SIGTERM the process group ``pgid``, wait up to ``timeout`` s for it to exit, then SIGKILL it.

    Returns False when the group was already gone (nothing to stop), True otherwise. Returns as soon as
    every member exited (an exited leader that is our child is reaped, not waited for).
    """
    if not group_alive(pgid):  # zombies only (their parent has not reaped them yet) count as gone
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            kill_group(pgid)
            break
        time.sleep(poll)
    return True


def kill_group(pgid: int, timeout: float = 10.0, poll: float = 0.1) -> bool:
    """SIGKILL the process group ``pgid`` and wait (up to ``timeout`` s) until none of it runs.

    Returns False when the group was already gone.
    """
    if not group_alive(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(poll)
    return True


def kill_children(pid: int | None = None) -> list[int]:
    """SIGKILL every descendant of ``pid`` (default: this process); returns their pids."""
    try:
        children = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)
    return [c.pid for c in children]
