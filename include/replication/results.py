"""What replication, verification and restore return: typed values, each with ``to_dict()`` for XCom.

XCom carries JSON, so the operators push ``to_dict()``; the shape is exactly the dataclass fields
(nested dataclasses as objects), documented per class below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Replicated:
    """One store brought in line with the primary lake (an hour, or a dataset directory).

    ``cloud``/``bucket``: the store; ``hour`` (ISO 8601, UTC) or ``dataset``: what was copied;
    ``objects``: files the manifest lists; ``uploaded``/``skipped``: files sent / already there (by SHA-256);
    ``bytes_uploaded``: bytes sent, manifest included; ``stale_deleted``: objects removed that the manifest
    no longer lists; ``manifest``: its key; ``seconds``: wall time of the run.
    """

    cloud: str
    bucket: str
    hour: str | None
    dataset: str | None
    objects: int
    uploaded: int
    skipped: int
    bytes_uploaded: int
    stale_deleted: int
    manifest: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    """One object of one store that does not match the reference manifest.

    ``problem`` is one of ``missing``, ``checksum mismatch``, ``changed since replicated`` (primary only,
    never overwritten), ``not in manifest``, ``manifest missing``, ``manifest corrupt``, ``manifest differs``.
    ``source``: where a repair copied from (``local lake``, ``lake``, a cloud, ``manifest``), None if none.
    """

    cloud: str
    object: str
    problem: str
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerifyReport:
    """Every store's copy of an hour, re-read and compared with the reference manifest.

    ``reference``: where the reference came from (``lake manifest`` or ``manifest of <clouds>``);
    ``clouds``: the stores checked, primary first; ``objects_checked``: files × stores;
    ``problems`` as found; ``repaired`` / ``unrepaired``: the same problems with their ``source``.
    """

    hour: str
    reference: str
    clouds: list[str]
    objects_checked: int
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Restored:
    """One hour rebuilt from ``source`` into ``target`` (``local lake``, ``lake`` or a cloud): ``objects``
    files, ``bytes_restored`` bytes verified against the source's manifest, in ``seconds``."""

    hour: str
    source: str
    target: str
    objects: int
    bytes_restored: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
