"""The interface every cluster backend implements (local standalone today; EMR or Dataproc next)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ClusterInfo:
    """What a DAG needs to know about a running cluster (serialisable to XCom)."""

    backend: str
    master_url: str
    ui_url: str | None
    started: bool  # True when this call started it (so this run may stop it)
    workers: int
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterStatus:
    alive: bool
    workers: int
    active_apps: int


class ClusterBackend(ABC):
    """Start (or reuse), inspect and stop one cluster. Implementations must be idempotent."""

    name: str

    @property
    @abstractmethod
    def master_url(self) -> str:
        """What spark-submit's ``--master`` points at, e.g. ``spark://127.0.0.1:7077``."""

    @property
    @abstractmethod
    def ui_url(self) -> str | None:
        """The cluster's web UI (operator extra links point here)."""

    @abstractmethod
    def status(self) -> ClusterStatus:
        """Current state; ``alive=False`` when nothing answers."""

    @abstractmethod
    def start(self, timeout: float = 120.0) -> ClusterInfo:
        """Make sure the cluster is up with its workers registered; reuse a running one."""

    @abstractmethod
    def stop(self, timeout: float = 30.0) -> bool:
        """Stop what this backend started; return True if something was stopped."""
