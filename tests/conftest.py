"""Test session setup: a world of its own (stack.world), never the user's `.env`.

Its own Spark cluster, emulators, buckets, Airflow home and ports, lake and warehouse, all under one
temporary state directory, so a running `make demo` (or a `.env` pointed at real clouds) is never
touched. The session refuses to start when any connection it would use is not on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from stack import world as stack_world
from stack.loopback import NotLoopbackError, require_loopback
from tricloud.cluster.local_connect import CONNECT, MODE_ENV, SPARK_SUBMIT

WORLD = pytest.StashKey[stack_world.World]()
SHELL_ENV = pytest.StashKey[dict[str, str]]()
DROPPED = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Before anything imports airflow: it reads its settings from the environment once.
    shell = dict(os.environ)
    world = stack_world.build(Path(tempfile.mkdtemp(prefix="tricloud-test-")), name="test")
    # The suite's DAG hours run through Spark Connect, the demo's mode (.env.example; an hour 25.7 s instead
    # of 69.2 s through spark-submit, docs/design.md). Modules about spark-submit itself (a driver killed
    # mid-job, re-attach, the job lifecycle) carry ``pytest.mark.spark_submit`` and run in that mode:
    # :func:`spark_submit_pinned`. Said explicitly, not left to .env.example.
    env = {**world.env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", MODE_ENV: CONNECT}
    # Applied before the guard: parsing connections imports Airflow, whose configuration (AIRFLOW_HOME,
    # its metadata DB) is fixed by the environment it is first imported in. Drops the shell's other
    # AIRFLOW_* settings (its metadata DB, config, executor, …); said at session start.
    config.stash[DROPPED] = stack_world.dropped_line(stack_world.apply(env))
    try:
        require_loopback(shell)  # what the shell exported, before our world masks it
        require_loopback(dict(os.environ))  # what the suite will really use
    except NotLoopbackError as err:
        world.release_ports()
        shutil.rmtree(world.state, ignore_errors=True)
        raise pytest.UsageError(str(err)) from None
    config.stash[SHELL_ENV] = shell
    config.stash[WORLD] = world
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(["airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())


#: Package-scoped stacks (a private Airflow several modules share, see tests/faults/conftest.py).
SHARED_STACKS = frozenset({"shared_fault_airflow"})


def shared_stack_last(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with, inside each directory, the modules that use a shared stack after the others.

    A stable sort by (directory's first position, module uses a shared stack, position): modules stay
    whole and in their order otherwise, so the shared stack starts late and its package-scoped teardown
    comes right after its last user instead of leaving it idle beside unrelated modules.
    """
    first_of_dir: dict[Path, int] = {}
    shared_module: dict[Path, bool] = {}
    for i, item in enumerate(items):
        first_of_dir.setdefault(item.path.parent, i)
        uses = bool(SHARED_STACKS.intersection(getattr(item, "fixturenames", ())))
        shared_module[item.path] = shared_module.get(item.path, False) or uses
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(items, key=lambda it: (first_of_dir[it.path.parent], shared_module[it.path], order[id(it)]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = shared_stack_last(items)


def pytest_sessionstart(session: pytest.Session) -> None:
    line = session.config.stash.get(DROPPED, "")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        reporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    world = config.stash.get(WORLD, None)
    if world is None:
        return
    from stack import prod

    # A production topology a failed module left running would outlive its pid files once removed.
    prod.stop_recorded(world.state / "prod", base=dict(os.environ))
    world.release_ports()
    if not os.environ.get("TRICLOUD_KEEP_TEST_STATE"):
        shutil.rmtree(world.state, ignore_errors=True)


@pytest.fixture(scope="session")
def world(pytestconfig: pytest.Config) -> stack_world.World:
    """The session's own world: state dir, environment, ports by role, bucket name."""
    return pytestconfig.stash[WORLD]


def changed_world_env(world_env: dict[str, str], environ: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """The world's variables ``environ`` no longer holds as set: name -> (now, expected)."""
    return {k: (environ.get(k), v) for k, v in world_env.items() if environ.get(k) != v}


@pytest.fixture(scope="module", autouse=True)
def world_env_restored(request: pytest.FixtureRequest):
    """Every test module leaves the session's world as it found it (LAKE_ROOT, connections, ports, …).

    Autouse and module-scoped, so it is set up before and torn down after the module's own fixtures:
    a module fixture that changed one of the world's variables without restoring it fails here,
    naming the variable, instead of silently moving every later module onto its value.
    """
    world_env = dict(request.config.stash[WORLD].env)
    before = changed_world_env(world_env, dict(os.environ))  # e.g. the logging level conftest overrides
    yield
    after = changed_world_env(world_env, dict(os.environ))
    assert after == before, f"{request.module.__name__} left the session's environment changed: {after}"


#: The marker of a module whose jobs run through spark-submit (see :func:`spark_submit_pinned`).
SPARK_SUBMIT_MARK = "spark_submit"


def spark_submit_module(node: pytest.Item | pytest.Collector) -> bool:
    """Whether ``node``'s module is marked :data:`SPARK_SUBMIT_MARK` (its ``pytestmark``)."""
    module = node.getparent(pytest.Module)
    return module is not None and module.get_closest_marker(SPARK_SUBMIT_MARK) is not None


@pytest.fixture(scope="module", autouse=True)
def spark_submit_pinned(request: pytest.FixtureRequest, world_env_restored):
    """In a module marked ``spark_submit``: ``TRICLOUD_SPARK_SUBMIT_MODE=spark-submit`` for the module, and
    the world's Spark Connect server stopped, so its jobs find the cluster as a spark-submit world has it
    (every core and all worker memory; the server's warm executor holds one core and its executor memory, 512 MiB since session 8).

    The next job in Connect mode starts the server again (``start_cluster``, or ``submit`` when it finds
    none, tricloud.cluster.local_jobs). Depends on :func:`world_env_restored`, so the module's environment
    is checked after this fixture put the mode back.
    """
    if not spark_submit_module(request.node):
        yield
        return
    from tricloud.cluster.local import LocalStandaloneBackend

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, SPARK_SUBMIT)
        LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1).stop_connect()
        yield


@pytest.fixture(scope="session")
def shell_env(pytestconfig: pytest.Config) -> dict[str, str]:
    """The environment the session was started with, before its world was applied (a user's shell)."""
    return dict(pytestconfig.stash[SHELL_ENV])


@pytest.fixture(scope="session")
def spark():
    """A local[1] SparkSession for pure-transform tests."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("unit-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def spark_backend(spark_cluster):
    """The local standalone backend of the session's world (own ports, own state dir), running, in the
    module's mode (:func:`spark_submit_pinned`): built per test, as the mode is read at construction."""
    from tricloud.cluster.local import LocalStandaloneBackend

    return LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1)


@pytest.fixture(scope="session")
def spark_cluster(world):
    """The world's running standalone cluster (with its Connect server when the first module to need it
    runs in Connect mode); stopped at the end."""
    from tricloud.cluster.local import LocalStandaloneBackend

    backend = LocalStandaloneBackend.from_settings(conn_id="spark_default", workers=1)
    info = backend.start()
    yield info
    backend.stop()


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("LAKE_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def emulators(world):
    """The world's S3, GCS and Azure Blob emulators on its own ports, with its replica bucket created."""
    from stack.emulators import create_buckets
    from stack.emulators import emulators as stack_emulators

    env = dict(os.environ)
    procs = stack_emulators(env)
    started = []
    try:
        for p in procs:
            p.start(reuse=False)
            started.append(p)
        create_buckets(env)
        yield {p.name: p for p in procs}
    finally:
        for p in started:
            p.stop()


@pytest.fixture(scope="module")
def prod_stack(spark_cluster, emulators):
    """The production topology (stack.prod), fresh for each module that uses it:
    (rest client, env, lake root, start-up timings)."""
    from tests.support.stack import production_stack

    with production_stack() as stack:
        yield stack
