"""The project's code as the cloud backends stage it: ``include/`` zipped deterministically, named by content.

Used by every backend that ships code to a cluster it does not share a disk with (EMR, EMR
Serverless, Dataproc, Dataproc Serverless): the same sources give the same bytes, so a staged object is
uploaded once per content and never overwritten under a running job.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``include/`` (the package the jobs import)."""
    import include

    return Path(include.__file__).resolve().parent.parent


@functools.lru_cache(maxsize=4)
def _zip_of(root: Path, stamp: tuple[tuple[str, int, int], ...]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, _, _ in stamp:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    return buffer.getvalue()


def project_zip(root: Path | None = None) -> bytes:
    """``include/`` as a zip the cluster puts on ``--py-files`` (``import include.jobs.common`` works).

    Only ``*.py`` files, no caches; the same sources give the same bytes (cached per file stamps, so a
    worker builds it once per content, not once per job).
    """
    root = root or project_root()
    files = sorted(p for p in (root / "include").rglob("*.py") if "__pycache__" not in p.parts and p.is_file())
    stamp = tuple((p.relative_to(root).as_posix(), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _zip_of(root, stamp)


def digest(data: bytes) -> str:
    """The first 16 hex digits of SHA-256: names a staged object by its content."""
    return hashlib.sha256(data).hexdigest()[:16]
