"""Object-store I/O of the jobs on a Spark cluster that has no object-store connector: staged through local disk.

A job on an object-store lake (``LAKE_ROOT=s3://…``) reads its raw input and writes its partition with
Spark. How Spark reaches the store is the cluster's business, so the **backend** chooses, through the
driver's environment variable :data:`OBJECT_STORE_IO_ENV` (never the DAG):

- ``connector`` (the default; EMR's EMRFS, Dataproc's GCS connector): Spark reads ``s3://…`` and writes
  the attempt prefix itself (:func:`include.jobs.common.publish_to_object_store`);
- ``staged`` (a standalone cluster without hadoop-aws, e.g. compute kept on the ``local`` backend and the
  lake in S3): the driver downloads the hour's raw input object to a local staging directory
  (:func:`stage_input`), Spark writes the partition to a local staging directory, and the driver uploads
  exactly the files Spark wrote to the attempt prefix, in the layout EMRFS leaves there (the Parquet
  part files and ``_SUCCESS``; :func:`write_attempt`). The commit is the same as with a connector
  (:func:`include.lake_attempt.commit_written`: hashed by streaming, pointer last).

Limit: the driver and every executor must see the same staging directory (one host, e.g. the local
standalone cluster, or a shared mount given as :data:`STAGING_DIR_ENV`): an executor on another host
would read and write its own disk. The staging directory is removed when the driver exits.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from include import lake_fs
from include.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from include.lake_commit import ObjectLake

log = logging.getLogger("include.jobs")

#: The driver's environment variable that says how Spark reaches an object-store lake (set by the backend).
OBJECT_STORE_IO_ENV = "TRICLOUD_OBJECT_STORE_IO"
CONNECTOR = "connector"
STAGED = "staged"
#: Where ``staged`` mode keeps its files (default: the system temp dir); must be shared with the executors.
STAGING_DIR_ENV = "TRICLOUD_STAGING_DIR"


def mode() -> str:
    """``connector`` or ``staged``, from :data:`OBJECT_STORE_IO_ENV` (unset or empty: ``connector``).

    :raises ValueError: any other value (the message names the variable and the allowed values).
    """
    value = (os.environ.get(OBJECT_STORE_IO_ENV) or CONNECTOR).strip().lower()
    if value not in (CONNECTOR, STAGED):
        raise ConfigError(f"{OBJECT_STORE_IO_ENV}={value!r}: set it to {CONNECTOR!r} or {STAGED!r}")
    return value


def is_staged(root: str) -> bool:
    """Whether the lake at ``root`` is reached through local staging (an object-store lake in ``staged`` mode)."""
    return lake_fs.is_object_store(root) and mode() == STAGED


@functools.cache
def staging_root() -> Path:
    """This driver's private staging directory (created once, removed at exit)."""
    parent = os.environ.get(STAGING_DIR_ENV) or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="tricloud-staged-", dir=parent))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def stage_input(uri: str) -> Path:
    """Download the object ``uri`` (``s3://bucket/<rel>/<file>``) into the staging directory; its local path.

    The local path mirrors the object's key, so the file keeps its name (Spark's error messages name it).
    """
    filesystem, key = lake_fs.filesystem(uri)
    local = staging_root() / "input" / key
    local.parent.mkdir(parents=True, exist_ok=True)
    with filesystem.open_input_stream(key) as src, open(local, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    log.warning("staged input %s -> %s (%d bytes)", uri, local, local.stat().st_size)
    return local


def write_attempt(df: DataFrame, the_lake: ObjectLake, relpath: str, attempt: str) -> tuple[Path, ...]:
    """Write ``df`` with Spark to a local staging directory, then upload the files Spark wrote to the
    attempt prefix ``<rel>/_attempts/<attempt>/`` as EMRFS leaves them (Parquet part files, ``_SUCCESS``;
    no ``.crc``). Returns the local Parquet files (what Spark reads back: it cannot read the store).

    On failure the local files are removed; the caller deletes the attempt's objects.
    """
    local = staging_root() / "output" / relpath.strip("/") / attempt
    try:
        df.write.mode("error").parquet(str(local))
        written = sorted(p for p in local.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        prefix = f"{the_lake.attempts_key(relpath.strip('/'))}/{attempt}"
        for path in written:
            the_lake.put_file(f"{prefix}/{path.name}", path)
        if (local / "_SUCCESS").is_file():
            the_lake.put(f"{prefix}/_SUCCESS", b"")  # last, as Hadoop's committer writes it
    except BaseException:
        shutil.rmtree(local, ignore_errors=True)
        raise
    log.warning("uploaded %d file(s) of %s to attempt %s", len(written), relpath, attempt)
    return tuple(written)
