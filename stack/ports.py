"""Free TCP ports on 127.0.0.1 for a world of its own (the test suite, a benchmark, the production topology).

A port is chosen at random below the kernel's ephemeral range (so no outgoing connection's source
port can take it between the choice and the server's ``bind``), checked by binding it, and reserved
machine-wide by a file ``<tmp>/tricloud-ports/<port>`` holding the owner's pid until released or the
owner dies: two test sessions (two clones) choosing at the same moment never get the same port, even
though neither has started its servers yet. Why by hand and what race is left: docs/design.md,
"A hermetic test suite".
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
from pathlib import Path

from include.processes import alive

RESERVATIONS = Path(tempfile.gettempdir()) / "tricloud-ports"
LOWEST = 20000  # above the registered ports the .env.example defaults use (4443 … 10000)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing source ports (``net.ipv4.ip_local_port_range``), inclusive."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def candidates() -> range:
    """Ports we choose from: below the ephemeral range, else above it."""
    low, high = ephemeral_range()
    return range(LOWEST, low) if low - LOWEST >= 1000 else range(high + 1, 65536)


def bindable(port: int) -> bool:
    """Nothing is bound to ``port`` on 127.0.0.1 (nor on 0.0.0.0, which blocks the bind as well)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reserve(port: int, owner: int) -> bool:
    RESERVATIONS.mkdir(parents=True, exist_ok=True)
    path = RESERVATIONS / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and alive(holder):
                return False
            path.unlink(missing_ok=True)  # its owner died without releasing it
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(owner))
        return True
    return False


def free_ports(n: int, owner: int | None = None) -> list[int]:
    """``n`` distinct ports, free now and reserved for process ``owner`` (default: this process).

    :raises RuntimeError: when no ``n`` free ports are found (the range is exhausted).
    """
    owner = owner or os.getpid()
    pool = list(candidates())
    random.shuffle(pool)
    chosen: list[int] = []
    for port in pool:
        if len(chosen) == n:
            break
        if bindable(port) and _reserve(port, owner):
            if bindable(port):  # bound by someone between the check and the reservation
                chosen.append(port)
            else:
                release([port])
    if len(chosen) < n:
        release(chosen)
        span = candidates()
        raise RuntimeError(f"only {len(chosen)} of {n} free ports on 127.0.0.1 in {span.start}..{span.stop - 1}")
    return chosen


def free_port(owner: int | None = None) -> int:
    """One port as :func:`free_ports` chooses it."""
    return free_ports(1, owner)[0]


def release(ports: list[int]) -> None:
    """Drop the reservations of ``ports`` (the servers on them are stopped, or own them by now)."""
    for port in ports:
        with contextlib.suppress(OSError):
            (RESERVATIONS / str(port)).unlink()
