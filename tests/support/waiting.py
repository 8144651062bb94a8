"""Polling until a condition holds, for tests that wait on real processes (Airflow, Spark, emulators)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.2) -> T:
    """Call ``predicate`` every ``poll`` seconds until it returns a truthy value, and return that value.

    :param timeout: seconds (monotonic clock) before giving up; a hang guard, not a speed assertion.
    :param what: what is awaited, for the failure message.
    :raises AssertionError: "timed out after N s waiting for <what>" once ``timeout`` has passed.
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(poll)
    return value
