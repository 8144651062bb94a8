"""bench.demo_clone reads back the phase table ``make demo`` prints (stack/clock.py's format)."""

from __future__ import annotations

from bench.demo_clone import phases_from
from stack.clock import PhaseClock


def test_phases_are_read_back_from_the_demo_s_own_table():
    clock = PhaseClock()
    clock.phases = [("install (venv ∥ npm ∥ Java)", 52.7), ("the hour (trigger or follow → run ended)", 29.25)]
    printed = "Hour  processed by run x\n" + clock.table() + "\nanything after the table\n"
    phases = phases_from(printed)
    assert list(phases) == ["install (venv ∥ npm ∥ Java)", "the hour (trigger or follow → run ended)", "total"]
    assert phases["install (venv ∥ npm ∥ Java)"] == 52.7
    assert phases["the hour (trigger or follow → run ended)"] in (29.2, 29.3)  # printed with one decimal


def test_no_table_no_phases():
    assert phases_from("make: *** [Makefile:22: demo] Error 1") == {}
