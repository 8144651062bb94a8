"""Record how long the test suite took, per module, from a pytest JUnit XML file (issue 16: `make test` ≤ 15 min).

`make test` writes ``.stack/pytest-junit.xml`` (``--junitxml``); then

    python -m bench.suite_time .stack/pytest-junit.xml [--label full-run]   (or: make suite-time)

adds that run under ``--label`` to bench/results/suite.json (earlier labels are kept, so a before and an
after sit side by side) and rewrites bench/results/suite.md. A partial run (some files only, e.g. under
the heavy-run lock) is recorded the same way with its own label; the Markdown says which files it held.

Per module: tests, failed/errored/skipped, and seconds = the sum of its test cases' JUnit ``time``. pytest
counts setup + call + teardown into a case's time (``junit_duration_report = total``, the default), so a
module-scoped fixture's start-up is in its module's figure and the modules add up to the run's wall time
minus collection and session start/stop (the suite's ``time`` attribute is the whole session).
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import RESULTS, machine

NAME = "suite"
GOAL_S = 15 * 60  # issue 16: `make test` on 2 cores in 15 minutes or less


@dataclass
class ModuleTime:
    """One test module's share of a run (seconds of wall time, setup and teardown included)."""

    tests: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0


@dataclass
class SuiteRun:
    """One pytest run read from its JUnit XML."""

    label: str
    source: str
    wall_s: float
    tests: int
    failed: int
    skipped: int
    modules: dict[str, ModuleTime] = field(default_factory=dict)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    partial: bool = False  # some files only: no verdict against the whole suite's goal
    machine: dict = field(default_factory=machine)


def module_of(case: ET.Element) -> str:
    """``tests/faults/test_x.py`` from a test case's ``classname`` (``tests.faults.test_x.TestY``)."""
    parts = case.get("classname", "").split(".")
    for i in range(len(parts), 0, -1):  # the longest prefix naming a file under tests/
        if parts[i - 1].startswith("test_"):
            return "/".join(parts[:i]) + ".py"
    return case.get("classname", "?")


def read_junit(path: Path, label: str) -> SuiteRun:
    """A :class:`SuiteRun` from pytest's ``--junitxml`` file (one or more ``testsuite`` elements).

    :raises ValueError: when the file holds no test case (not a pytest JUnit file, or an empty run).
    """
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    run = SuiteRun(label=label, source=str(path), wall_s=0.0, tests=0, failed=0, skipped=0)
    cases: list[tuple[str, float]] = []
    for suite in suites:
        run.wall_s += float(suite.get("time", 0))
        for case in suite.iter("testcase"):
            mod = run.modules.setdefault(module_of(case), ModuleTime())
            seconds = float(case.get("time", 0))
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            mod.tests += 1
            mod.failed += failed
            mod.skipped += skipped
            mod.seconds += seconds
            run.tests += 1
            run.failed += failed
            run.skipped += skipped
            cases.append((f"{case.get('classname')}::{case.get('name')}", seconds))
    if not run.tests:
        raise ValueError(f"{path} holds no test case: pass the file written by `pytest --junitxml=...`")
    run.slowest = [(n, round(s, 1)) for n, s in sorted(cases, key=lambda c: -c[1])[:15]]
    for mod in run.modules.values():
        mod.seconds = round(mod.seconds, 1)
    run.wall_s = round(run.wall_s, 1)
    return run


def markdown(runs: dict[str, dict]) -> str:
    """The results page: every recorded run's total, then modules side by side (seconds)."""
    labels = list(runs)
    lines = [
        "# Test suite time",
        "",
        f"Goal (issue 16): `make test` on 2 cores in {GOAL_S // 60} min or less. Seconds of wall time; a "
        "module's figure includes its fixtures' start-up and teardown. Written by `python -m bench.suite_time`.",
        "",
        "| run | tests | failed | skipped | wall (s) | wall (min) | vs goal | date | cores |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in runs.items():
        if r.get("partial"):
            verdict = "partial run"
        elif r["wall_s"] <= GOAL_S:
            verdict = "met"
        else:
            verdict = f"missed by {(r['wall_s'] - GOAL_S) / 60:.0f} min"
        m = r.get("machine", {})
        lines.append(
            f"| {label} | {r['tests']} | {r['failed']} | {r['skipped']} | {r['wall_s']:.0f} | "
            f"{r['wall_s'] / 60:.1f} | {verdict} | {m.get('date', '')} | {m.get('cpus', '')} |"
        )
    notes = [f"- {label}: {r['note']}" for label, r in runs.items() if r.get("note")]
    if notes:
        lines += ["", *notes]
    modules = sorted({m for r in runs.values() for m in r["modules"]})
    lines += ["", "## Per module (s)", "", "| module | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for mod in modules:
        cells = []
        for r in runs.values():
            got = r["modules"].get(mod)
            cells.append(f"{got['seconds']:.0f} ({got['tests']})" if got else "–")
        lines.append(f"| {mod} | " + " | ".join(cells) + " |")
    for label, r in runs.items():
        lines += ["", f"## Slowest tests: {label}", "", "| test | s |", "|---|---|"]
        lines += [f"| `{name}` | {s:.0f} |" for name, s in r["slowest"]]
    return "\n".join(lines) + "\n"


def record(run: SuiteRun, note: str = "", results: Path = RESULTS) -> dict[str, dict]:
    """Add ``run`` to ``results/suite.json`` (replacing a run of the same label) and rewrite suite.md."""
    path = results / f"{NAME}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    runs[run.label] = asdict(run) | ({"note": note} if note else {})
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": "test suite time", "goal_s": GOAL_S, "runs": runs}, indent=2) + "\n")
    (results / f"{NAME}.md").write_text(markdown(runs))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("junit", type=Path, help="the file pytest wrote with --junitxml")
    parser.add_argument("--label", default="full-run", help="name of this run in the results (default: full-run)")
    parser.add_argument("--note", default="", help="one line saying what the run was (e.g. which files)")
    parser.add_argument("--partial", action="store_true", help="the run held some files only (no goal verdict)")
    args = parser.parse_args(argv)
    run = read_junit(args.junit, args.label)
    run.partial = args.partial
    runs = record(run, args.note)
    print(markdown({args.label: runs[args.label]}))


if __name__ == "__main__":
    main()
