"""Wall time of the demo's phases, printed as one table at the end of ``make demo``.

The Makefile passes the phases it ran before Python started (the install) in ``TRICLOUD_DEMO_CLOCK``:
``name:start:end`` entries separated by ``,``, times in seconds since the epoch (``date +%s.%N``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class PhaseClock:
    """Named phases with their wall time in seconds, in the order they ran."""

    phases: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @classmethod
    def from_env(cls, value: str | None) -> PhaseClock:
        """A clock holding the phases of ``TRICLOUD_DEMO_CLOCK`` (none when unset or empty); it starts at
        the first of them, so the total includes them.

        :raises ValueError: an entry is not ``name:start:end`` with numbers (names the entry).
        """
        clock = cls()
        for entry in filter(None, (value or "").split(",")):
            name, _, times = entry.rpartition(":")
            name, _, start = name.rpartition(":")
            try:
                t0, t1 = float(start), float(times)
            except ValueError:
                msg = f"TRICLOUD_DEMO_CLOCK: {entry!r} is not name:start:end (seconds since the epoch)"
                raise ValueError(msg) from None
            clock.started = min(clock.started, t0)
            clock.phases.append((name, t1 - t0))
        return clock

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.time()
        try:
            yield
        finally:
            self.phases.append((name, time.time() - t0))

    def table(self) -> str:
        """The phases and the total (first phase's start → now), one line each."""
        width = max([len(n) for n, _ in self.phases] + [5])
        lines = ["Time per phase"] + [f"  {n:<{width}}  {s:6.1f} s" for n, s in self.phases]
        lines.append(f"  {'total':<{width}}  {time.time() - self.started:6.1f} s")
        return "\n".join(lines)
