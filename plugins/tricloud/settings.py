"""Where things are. Environment names are defined here once; values live in ``.env``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import include
from include.errors import ConfigError, MissingFileConfigError
from include.paths import check_lake_root

#: The project checkout (parent of ``include/``); spark-submit needs it on PYTHONPATH.
PROJECT_ROOT = Path(include.__file__).resolve().parent.parent
JOBS_DIR = PROJECT_ROOT / "include" / "jobs"

LAKE_ROOT_ENV = "LAKE_ROOT"
STATE_DIR_ENV = "TRICLOUD_STATE_DIR"


def lake_root() -> str:
    """The lake's root (env ``LAKE_ROOT``): an absolute directory, or an object-store URI
    (``s3://bucket/prefix``, returned as given). Fails with what to set."""
    value = os.environ.get(LAKE_ROOT_ENV)
    if not value:
        raise ConfigError(f"{LAKE_ROOT_ENV} is not set: set it in .env (see .env.example) to the lake directory")
    if "://" in value:
        return check_lake_root(value)
    path = Path(value)
    # Refuses what some layer cannot take, naming the character (include/paths.py).
    return check_lake_root(str(path if path.is_absolute() else (PROJECT_ROOT / path).resolve()))


def state_dir() -> Path:
    """Runtime state of the local stack (pid files, logs): env ``TRICLOUD_STATE_DIR`` or ``.stack/``."""
    return Path(os.environ.get(STATE_DIR_ENV) or PROJECT_ROOT / ".stack")


def job_path(name: str) -> str:
    """Absolute path of a Spark job module in ``include/jobs`` (what spark-submit runs)."""
    path = JOBS_DIR / f"{name}.py"
    if not path.is_file():
        raise MissingFileConfigError(f"no Spark job {name!r}: {path} does not exist")
    return str(path)


def python_env() -> dict[str, str]:
    """Environment for spark-submit: same Python and Spark as this process, project importable."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    pythonpath = os.environ.get("PYTHONPATH", "")
    return {
        "PATH": bin_dir + (os.pathsep + path if path else ""),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(PROJECT_ROOT) + (os.pathsep + pythonpath if pythonpath else ""),
        # Drivers bind where the stack says (127.0.0.1 locally), not on every interface.
        **({"SPARK_LOCAL_IP": os.environ["SPARK_LOCAL_IP"]} if os.environ.get("SPARK_LOCAL_IP") else {}),
    }


REPORT_MAX_MISSING_HOURS_ENV = "TRICLOUD_REPORT_MAX_MISSING_HOURS"


def report_max_missing_hours() -> int:
    """How many of a day's 24 hours may still be missing when its daily report runs (env
    ``TRICLOUD_REPORT_MAX_MISSING_HOURS``, default 0: the report waits for every hour).

    Read when the report DAG is parsed. Raises ``ValueError`` naming the setting unless it is a whole
    number from 0 to 23 (24 would report a day before any of its hours landed)."""
    raw = os.environ.get(REPORT_MAX_MISSING_HOURS_ENV, "").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 23:
        raise ConfigError(
            f"{REPORT_MAX_MISSING_HOURS_ENV}={raw!r} is invalid: set it to a whole number of hours from 0 "
            "(wait for all 24 hours, the default) to 23"
        )
    return value
