"""The suite's own plumbing: modules sharing a stack run together, and the suite-time record reads JUnit files."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench import suite_time
from tests.conftest import SPARK_SUBMIT_MARK, shared_stack_last, spark_submit_module
from tricloud.cluster.local_connect import CONNECT, MODE_ENV

pytestmark = pytest.mark.fast  # the fast tier: no server (`pytest -m fast`)


@dataclass
class Item:
    """What shared_stack_last reads of a pytest item: its file and the fixtures it uses."""

    name: str
    path: Path
    fixturenames: list[str] = field(default_factory=list)


def item(module: str, name: str, *fixtures: str) -> Item:
    return Item(name, Path("tests") / module, list(fixtures))


class TestSharedStackLast:
    def test_modules_using_a_shared_stack_move_after_the_others_of_their_directory_and_stay_whole(self):
        items = [
            item("e2e/test_a.py", "a1"),
            item("faults/test_b.py", "b1"),
            item("faults/test_c.py", "c1", "shared_fault_airflow"),
            item("faults/test_c.py", "c2"),  # same module, no stack: stays with its module
            item("faults/test_d.py", "d1"),
            item("faults/test_e.py", "e1", "shared_fault_airflow"),
            item("faults/test_f.py", "f1"),
            item("unit/test_g.py", "g1"),
        ]
        got = [i.name for i in shared_stack_last(items)]
        assert got == ["a1", "b1", "d1", "f1", "c1", "c2", "e1", "g1"]

    def test_a_run_without_shared_stacks_keeps_its_order(self):
        items = [item("x/test_b.py", "b"), item("x/test_a.py", "a"), item("y/test_c.py", "c")]
        assert [i.name for i in shared_stack_last(items)] == ["b", "a", "c"]


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4" time="100.5">
<testcase classname="tests.faults.test_x.TestA" name="test_one" time="60.25"/>
<testcase classname="tests.faults.test_x.TestA" name="test_two" time="20.0"><failure message="no"/></testcase>
<testcase classname="tests.unit.test_y" name="test_three" time="0.5"><skipped message="why"/></testcase>
<testcase classname="tests.unit.test_y" name="test_four[a.b]" time="1.0"/>
</testsuite></testsuites>
"""


class TestSuiteTime:
    def test_per_module_seconds_and_counts_come_from_the_junit_cases(self, tmp_path):
        path = tmp_path / "junit.xml"
        path.write_text(JUNIT)
        run = suite_time.read_junit(path, "t")
        assert (run.wall_s, run.tests, run.failed, run.skipped) == (100.5, 4, 1, 1)
        assert {m: (t.tests, t.failed, t.skipped, t.seconds) for m, t in run.modules.items()} == {
            "tests/faults/test_x.py": (2, 1, 0, 80.2),
            "tests/unit/test_y.py": (2, 0, 1, 1.5),
        }
        assert run.slowest[0] == ("tests.faults.test_x.TestA::test_one", 60.2)

    def test_runs_are_kept_side_by_side_by_label(self, tmp_path):
        path = tmp_path / "junit.xml"
        path.write_text(JUNIT)
        suite_time.record(suite_time.read_junit(path, "before"), results=tmp_path)
        after = suite_time.read_junit(path, "after")
        after.partial = True
        runs = suite_time.record(after, note="two files", results=tmp_path)
        assert list(runs) == ["before", "after"]
        md = (tmp_path / "suite.md").read_text()
        assert "| before | 4 | 1 | 1 | 100 | 1.7 | met |" in md
        assert "| after | 4 | 1 | 1 | 100 | 1.7 | partial run |" in md
        assert "| tests/faults/test_x.py | 80 (2) | 80 (2) |" in md
        assert "- after: two files" in md

    def test_a_file_without_test_cases_is_refused_saying_what_to_pass(self, tmp_path):
        path = tmp_path / "empty.xml"
        path.write_text("<testsuites/>")
        with pytest.raises(ValueError, match="--junitxml"):
            suite_time.read_junit(path, "x")


#: Modules whose jobs must run through spark-submit: they find a job's spark-submit and Python driver by
#: command line and kill them, or re-attach a task to them (docs/design.md, "The suite on Spark Connect").
SPARK_SUBMIT_MODULES = (
    "tests.faults.test_one_writer_per_hour",
    "tests.faults.test_spark_reattach",
    "tests.faults.test_stack_faults",
)


class TestSparkMode:
    def test_the_session_runs_its_jobs_through_spark_connect(self):
        assert os.environ[MODE_ENV] == CONNECT  # this module is not marked spark_submit

    @pytest.mark.parametrize("name", SPARK_SUBMIT_MODULES)
    def test_modules_that_kill_or_reattach_to_a_spark_submit_driver_are_pinned_to_it(self, name):
        marks = getattr(importlib.import_module(name), "pytestmark", [])
        assert SPARK_SUBMIT_MARK in {m.name for m in (marks if isinstance(marks, list) else [marks])}

    def test_the_mark_is_read_from_the_module_of_the_node(self, request):
        class Module:
            def __init__(self, marked: bool) -> None:
                self.marked = marked

            def get_closest_marker(self, name: str):
                return object() if self.marked and name == SPARK_SUBMIT_MARK else None

        class Node:
            def __init__(self, module) -> None:
                self.module = module

            def getparent(self, cls):
                return self.module

        assert spark_submit_module(Node(Module(True)))
        assert not spark_submit_module(Node(Module(False)))
        assert not spark_submit_module(Node(None))  # e.g. a session-level node
        assert not spark_submit_module(request.node)  # this module itself carries no such mark
