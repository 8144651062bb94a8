"""The real ``athlete_events.csv`` shipped with the project, checksum-verified whenever it is used.

Source: Kaggle, "120 years of Olympic history: athletes and results" (rgriffin), file
``athlete_events.csv``, released CC0 1.0 (public domain); provenance and licence in the README.
Shipped unmodified, gzip-compressed, as ``include/athletes/data/athlete_events.csv.gz``.

Format facts the readers rely on (checked by tests/unit/athletes/test_real_file.py): 271,116 records,
15 columns, CRLF line endings, strings quoted with RFC 4180 doubled quotes (``"Cornelia ""Cor"" Aalten"``),
names and events containing commas, and an unquoted ``NA`` for missing values — only in ``Age``,
``Height``, ``Weight`` (numbers) and ``Medal`` (whose values are Gold/Silver/Bronze). ``NA`` is never
nulled in the text columns: Name, Team, NOC, … keep every value as written.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import uuid
from pathlib import Path

from include.errors import InputError

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent / "data" / "athlete_events.csv.gz"
#: sha256 of the *uncompressed* file (as published), 41,500,688 bytes.
SHA256 = "1751e89b509dd8c0fa0979ee258eef4374aa93f17d64cd07383ad3f57c5aabd7"  # pragma: allowlist secret (a published checksum)
ROWS = 271_116
#: Distinct Games years in the file (1896–2016, Summer and Winter; none in 1916/1940/1944).
YEARS = 35
#: Columns where the sentinel ``NA`` means "missing"; everywhere else it is a value.
NA_COLUMNS = ("Age", "Height", "Weight", "Medal")

_CHUNK = 1 << 20


class ChecksumError(InputError):
    """The data does not have the published checksum: damaged or not the file it claims to be."""


def sha256_of(path: Path, *, gzipped: bool = False) -> str:
    """Hex sha256 of a file's bytes (of its uncompressed content when ``gzipped``)."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract(dest: str | Path, source: str | Path = SHIPPED, sha256: str = SHA256) -> Path:
    """Decompress ``source`` to ``dest`` and return ``dest``; verify the sha256 of what was written.

    A ``dest`` that already has the checksum is kept as is (a re-run costs one hash, ~0.1 s).
    Otherwise the file is written to a temporary name beside ``dest``, its hash checked, then renamed
    into place: ``dest`` is never a partial or wrong file. Raises :class:`ChecksumError` when the
    content does not match (nothing is left behind) and FileNotFoundError when ``source`` is missing.
    """
    dest, source = Path(dest), Path(source)
    if dest.is_file():
        if sha256_of(dest) == sha256:
            return dest
        log.warning("%s is not the published file (sha256 differs): replacing it from %s", dest, source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    try:
        with gzip.open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{source} decompresses to sha256 {digest.hexdigest()}, expected {sha256}: the shipped file is "
                "damaged or replaced; restore it with `git checkout -- include/athletes/data/athlete_events.csv.gz`"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
