"""Paths are data, not code: hand a filesystem path to each layer so that it is taken literally.

Each layer below reads some characters of a path string as syntax (measured with pyspark 4.2 and
DuckDB 2.0, see docs/design.md "Paths are data"):

- **Spark / Hadoop** expand ``[ ] { } * ?`` and ``\\`` as a glob in every read path
  (``spark.read.csv/json/parquet``): a root named ``lake [1]`` is "not found", a root ``st*ar`` silently
  also reads a sibling ``stXar``. :func:`hadoop_literal` escapes them (Hadoop's glob escape is ``\\``).
  Write paths are not globbed.
- **DuckDB** expands ``*`` and ``?`` even in a prepared parameter (``read_parquet(?)``) and parses a path
  pasted into SQL. :func:`read_parquet_files` reads with pyarrow from an open file instead; DuckDB
  writes through ``COPY … TO $out`` with the path as a parameter (write targets are not globbed).
- **Shells**: none. Every process is started from an argument list (``subprocess`` without
  ``shell=True``), so no path is ever parsed by a shell.

What some layer cannot take is refused up front by :func:`check_lake_root`: ``:`` (Hadoop builds a URI
from each path component it globs, and ``a:b`` parses as scheme ``a`` — "Relative path in absolute URI";
with glob characters escaped elsewhere in the root this fails every Spark read) and ASCII control
characters (a line break in a path breaks ``.env`` files and every line-based log or listing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from include.errors import ConfigError

#: Characters Hadoop's GlobPattern gives a meaning to (GlobPattern.java / Globber.java).
HADOOP_GLOB_CHARS = "\\[]{}*?"
_HADOOP_GLOB = re.compile(r"([\\\[\]{}*?])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Refused in a lake root, with the reason given in the error.
UNSUPPORTED = {":": "Hadoop reads 'a:b' in a path as a URI scheme (Spark fails: Relative path in absolute URI)"}


#: Why an ``abfss://`` lake is refused (docs/design.md "The lake on GCS").
NO_ABFSS = (
    "an Azure Data Lake (abfss://) lake is not supported: Azurite, the only local Azure endpoint, has no ADLS "
    "Gen2 (dfs) endpoint, so it could not be tested; use a local directory, s3://bucket/prefix or "
    "gs://bucket/prefix (the hour's outputs are still replicated to Azure Blob)"
)


class UnsupportedPathError(ConfigError):
    """A path holds a character that some layer of the pipeline cannot take literally."""


def hadoop_literal(path: str | Path) -> str:
    """``path`` as a Spark/Hadoop *read* path that matches exactly that file or directory.

    Escapes each of ``\\ [ ] { } * ?`` with a backslash, Hadoop's glob escape. Without it a lake root
    ``/data/lake [eu]`` is "Path does not exist" and ``/data/st*r`` also reads ``/data/stXr``.
    Use it for ``spark.read.*`` only: write paths are not globbed, and an escaped write path would
    create a directory with backslashes in its name.
    """
    return _HADOOP_GLOB.sub(r"\\\1", str(path))


class ObjectStoreLakeNotSupported(UnsupportedPathError):
    """A feature that works only on a local lake was given an object-store ``LAKE_ROOT``."""


#: What runs on an object-store lake today (docs/design.md, "The lake on object storage").
OBJECT_LAKE_FEATURES = "the Spark jobs, the hour lease, enrichment, the warehouse load, replication, verify and restore"


def require_local_lake(root: str | Path, feature: str) -> Path:
    """``root`` as a local path, or :class:`ObjectStoreLakeNotSupported` when it is an object-store URI.

    Without this, ``Path("s3://bucket/lake")`` is the *relative* local path ``s3:/bucket/lake``: a lease,
    a report or a job would silently read and write a directory under the process's working directory.

    :param root: the lake root (``LAKE_ROOT``).
    :param feature: what needs the local lake, for the message (e.g. ``"the hour lease"``).
    :raises ObjectStoreLakeNotSupported: ``root`` contains ``://``; the message names what to set.
    """
    if "://" in str(root):
        raise ObjectStoreLakeNotSupported(
            f"{feature} needs a local LAKE_ROOT; {str(root)!r} is an object store, where only "
            f"{OBJECT_LAKE_FEATURES} run so far: set LAKE_ROOT to a local directory for this pipeline"
        )
    return Path(root)


def check_lake_root(value: str | Path) -> str:
    """Return ``value`` unchanged, or raise :class:`UnsupportedPathError` naming the character to remove.

    An object-store URI (``s3://bucket/prefix``) is checked by its own rules and returned without a
    trailing ``/``.

    Refused: ``:`` (see :data:`UNSUPPORTED`) and ASCII control characters (U+0000–U+001F, U+007F), which
    no line-based file or log keeps intact. Everything else (quotes, spaces, ``[ ] { } * ? \\ % $ # ;``,
    non-ASCII) is supported by every layer and tested by tests/e2e/test_hostile_lake_root.py.
    """
    text = str(value)
    if "://" in text:
        return _check_object_store_root(text)
    for char, why in UNSUPPORTED.items():
        if char in text:
            raise UnsupportedPathError(
                f"LAKE_ROOT {text!r} contains {char!r} at position {text.index(char)}: {why}; "
                "choose a directory name without it"
            )
    bad = _CONTROL.search(text)
    if bad:
        raise UnsupportedPathError(
            f"LAKE_ROOT {text!r} contains the control character U+{ord(bad.group()):04X} at position {bad.start()}: "
            "no layer keeps it intact (.env files and logs are line-based); choose a directory name without it"
        )
    return text


def _check_object_store_root(text: str) -> str:
    """An object-store lake root (``s3://bucket/prefix``, ``gs://bucket/prefix``): a known scheme, a bucket, no
    control character.

    Hadoop never sees these paths (Spark cannot reach s3:// or gs:// here, see docs/design.md "The lake on
    object storage"), so ``:`` is not refused after the scheme. ``abfss://`` is refused with its own reason
    (:data:`NO_ABFSS`).
    """
    from urllib.parse import urlsplit

    from include.lake_fs import OBJECT_STORE_SCHEMES

    url = urlsplit(text)
    if url.scheme in ("abfss", "abfs"):
        raise UnsupportedPathError(f"LAKE_ROOT {text!r}: {NO_ABFSS}")
    if url.scheme not in OBJECT_STORE_SCHEMES:
        raise UnsupportedPathError(
            f"LAKE_ROOT {text!r}: scheme {url.scheme!r} is not supported; use a local directory or "
            + " or ".join(f"{s}://bucket/prefix" for s in OBJECT_STORE_SCHEMES)
        )
    if not url.netloc:
        raise UnsupportedPathError(f"LAKE_ROOT {text!r} names no bucket: write {url.scheme}://bucket/prefix")
    if url.query or url.fragment:
        raise UnsupportedPathError(f"LAKE_ROOT {text!r} has a '?' or '#' part: give only {url.scheme}://bucket/prefix")
    bad = _CONTROL.search(text)
    if bad:
        raise UnsupportedPathError(
            f"LAKE_ROOT {text!r} contains the control character U+{ord(bad.group()):04X} at position {bad.start()}: "
            "remove it"
        )
    return text.rstrip("/")


def read_parquet_files(files: Iterable[Path]):
    """Read Parquet files into one ``pyarrow.Table`` (schema of the first; none given: ``None``).

    Each file is opened by Python, so its name is never parsed. Spark's INT96 timestamps come back in
    microseconds, which is what DuckDB's own ``read_parquet`` gives (TIMESTAMP, not TIMESTAMP_NS).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        with open(f, "rb") as fh:
            tables.append(pq.read_table(fh, coerce_int96_timestamp_unit="us"))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def parquet_rows(files: Iterable[Path]) -> int:
    """Total row count of Parquet files, from their footers (names never parsed)."""
    import pyarrow.parquet as pq

    total = 0
    for f in files:
        with open(f, "rb") as fh:
            total += pq.read_metadata(fh).num_rows
    return total
