"""Reading an hour's raw inputs, before Spark: where the file is, its dialect, and the checks that fail
the hour at once (no input, an empty file, a changed schema). Pure Python (no Spark): the driver runs
these before it starts the work, on a local lake or an object store (``s3://``, streamed by pyarrow).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from include import errors, lake, lake_fs
from include.jobs import staged_io


class NoInputError(errors.MissingInputError):
    """The hour's raw input is not there: nothing to process, and nothing must be published."""


class InputFormatError(errors.InputError):
    """The whole file is unusable (schema change, truncated): fail the hour, publish nothing."""


#: The one CSV dialect of every raw CSV input: RFC 4180 (quote ``"``, a quote inside a quoted field is
#: doubled, quoted fields may hold commas and line breaks; a backslash is an ordinary character).
#: Accepted variations, each tested: a UTF-8 byte-order mark, LF / CRLF / CR line ends, a quoted header,
#: a last record with or without a line end, blank lines between records (skipped, not records).
#: ``SPARK_CSV_OPTIONS`` and ``PythonCsvDialect`` are the same dialect for Spark and for the stdlib ``csv``.
SPARK_CSV_OPTIONS = {"header": True, "multiLine": True, "quote": '"', "escape": '"', "encoding": "UTF-8"}


class PythonCsvDialect(csv.Dialect):
    """RFC 4180 for the stdlib ``csv`` module (read files with ``encoding="utf-8-sig", newline=""``)."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    escapechar = None
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL
    strict = False


@contextmanager
def open_input(path: str | Path) -> Iterator[BinaryIO]:
    """A raw input opened for reading bytes: a local file, or an object (``s3://…``) streamed through pyarrow."""
    if not lake_fs.is_object_store(str(path)):
        with open(path, "rb") as f:
            yield f
        return
    filesystem, key = lake_fs.filesystem(str(path))
    with filesystem.open_input_stream(key) as stream:
        yield io.BufferedReader(stream, 1 << 20)  # pyarrow's streams have no readline


def csv_records(path: str | Path):
    """Yield the records of a raw CSV file (header first) in the inputs' dialect; blank lines are skipped.

    Records, not lines: a quoted field may span lines. Undecodable bytes become U+FFFD, as in Spark.
    ``path`` is a local file or an object-store URI (streamed).
    """
    with open_input(path) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        for record in csv.reader(f, PythonCsvDialect):
            if record:
                yield record


def check_csv_header(path: str | Path, expected: Sequence[str]) -> None:
    """Fail with what changed when the header is not ``expected`` (Spark's own error names no column).

    The header is the first record in the RFC 4180 dialect above (so a BOM or quoted names are fine).
    """
    first = next(csv_records(path), None)
    if first is None or not any(c.strip() for c in first):
        raise InputFormatError(
            f"{path} is empty (no header line): a truncated upload? An hour without activity still has the header"
        )
    got = [c.strip() for c in first]
    if got != list(expected):
        missing = [c for c in expected if c not in got]
        unexpected = [c for c in got if c not in expected]
        raise InputFormatError(
            f"schema change in {path}: expected columns {list(expected)}, got {got} "
            f"(missing {missing}, unexpected {unexpected}); fix the producer, or the job's RAW_COLUMNS"
        )


def check_jsonl_not_empty(path: str | Path) -> None:
    """Fail the hour when a JSON-lines snapshot holds no record (zero bytes or blank lines only).

    A catalog snapshot is never legitimately empty: an empty one would turn every order of the hour
    into ``unknown_product_id`` and replace the hour's warehouse rows with none.
    """
    with open_input(path) as f:
        for line in f:
            if line.strip().lstrip(b"\xef\xbb\xbf"):
                return
    raise InputFormatError(
        f"{path} holds no record (zero bytes or blank lines only): a truncated upload? "
        "Re-send the snapshot; nothing was published for this hour"
    )


def input_location(root: str, dataset: tuple[str, str], start: datetime, name: str) -> Path | str:
    """Where the hour's raw input ``name`` is: a local path, or the object's URI on an object-store lake.
    This is what a job's metrics name as its input (never a staged copy, which exists on one machine).

    :raises NoInputError: the file (object) is not there.
    """
    if lake_fs.is_object_store(root):
        from pyarrow import fs

        uri = f"{root.rstrip('/')}/{lake.partition('/', dataset, start).relpath}/{name}"
        filesystem, key = lake_fs.filesystem(uri)
        if filesystem.get_file_info(key).type != fs.FileType.File:
            raise NoInputError(f"no input for hour {start:%Y-%m-%dT%H:00Z}: {uri} does not exist")
        return uri
    path = lake.partition(root, dataset, start).path / name
    if not path.is_file():
        raise NoInputError(f"no input for hour {start:%Y-%m-%dT%H:00Z}: {path} does not exist")
    return path


def readable_input(location: Path | str, root: str) -> Path | str:
    """What Spark and the checks read for ``location`` (:func:`input_location`): itself, or a local copy
    when the backend chose ``staged`` object-store I/O (:mod:`include.jobs.staged_io`)."""
    if lake_fs.is_object_store(str(location)) and staged_io.is_staged(root):
        return staged_io.stage_input(str(location))
    return location


def input_file(root: str, dataset: tuple[str, str], start: datetime, name: str) -> Path | str:
    """:func:`readable_input` of :func:`input_location`: the hour's raw input ``name`` as this driver reads it.

    :raises NoInputError: the file (object) is not there.
    """
    return readable_input(input_location(root, dataset, start, name), root)
