"""Separate hosts on this machine: network namespaces on a private bridge (iproute2, root required).

Each host is a namespace ``t<tag>-<name>`` with its own loopback and one veth link (``eth0`` inside) to
a bridge in the root namespace; the host's address is ``10.<n>.<m>.<10+i>/24`` and the bridge holds
``.1``, the address of this machine (the "Airflow worker" that runs spark-submit's driver) on that
private network. Nothing is routed beyond the bridge: the namespaces reach each other and the root
namespace's bridge address, and nothing else (not this machine's 127.0.0.1, not the internet).

Only the network is separate: the hosts share this machine's file system, as VMs share a mounted
lake (NFS / Azure Files / a blob mount at the same path on every VM).

:meth:`PrivateNetwork.cut` takes a host's link down (its bridge-side end), as a pulled cable or a
failed NIC would; :meth:`PrivateNetwork.close` kills every process left in the namespaces (``ip netns
pids``), then deletes the namespaces, their links and the bridge; it is safe to call twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
from dataclasses import dataclass, field

import psutil


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def netns_permitted() -> str | None:
    """None when namespaces can be made here, else why not (the skip reason)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add): run the tests as root or in a privileged container"
    name = f"tprobe{os.getpid()}"
    try:
        run("ip", "netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        return f"this machine does not permit network namespaces (ip netns add: {detail.strip()})"
    run("ip", "netns", "del", name, check=False)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    ip: str
    bridge_end: str  # the veth end attached to the bridge (in the root namespace)


@dataclass
class PrivateNetwork:
    """A bridge and one namespace per host name; see the module docstring."""

    names: tuple[str, ...]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000:04d}{random.randrange(100):02d}")
    hosts: dict[str, Host] = field(default_factory=dict)
    gateway: str = ""

    def __post_init__(self) -> None:
        self.bridge = f"tbr{self.tag}"
        used = run("ip", "-4", "route", "show").stdout
        for _ in range(50):  # a /24 no route on this machine uses yet
            prefix = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
            if f"{prefix}." not in used:
                break
        self.prefix = prefix
        self.gateway = f"{prefix}.1"

    def open(self) -> PrivateNetwork:
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for i, name in enumerate(self.names):
                host = Host(name, f"t{self.tag}-{name}", f"{self.prefix}.{10 + i}", f"tv{self.tag}{i}")
                self.hosts[name] = host
                run("ip", "netns", "add", host.namespace)
                run("ip", "link", "add", host.bridge_end, "type", "veth", "peer", "name", f"tp{self.tag}{i}")
                run("ip", "link", "set", f"tp{self.tag}{i}", "netns", host.namespace)
                self.in_ns(name, "ip", "link", "set", f"tp{self.tag}{i}", "name", "eth0")
                self.in_ns(name, "ip", "addr", "add", f"{host.ip}/24", "dev", "eth0")
                self.in_ns(name, "ip", "link", "set", "eth0", "up")
                self.in_ns(name, "ip", "link", "set", "lo", "up")
                run("ip", "link", "set", host.bridge_end, "master", self.bridge)
                run("ip", "link", "set", host.bridge_end, "up")
        except BaseException:
            self.close()
            raise
        return self

    def in_ns(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.hosts[name].namespace, *args)

    def prefix_command(self, name: str) -> list[str]:
        """The command prefix that runs a program on host ``name``."""
        return ["ip", "netns", "exec", self.hosts[name].namespace]

    def cut(self, name: str) -> None:
        """Take host ``name``'s link down: its packets go nowhere, and nobody's reach it."""
        run("ip", "link", "set", self.hosts[name].bridge_end, "down")

    def restore(self, name: str) -> None:
        run("ip", "link", "set", self.hosts[name].bridge_end, "up")

    def pids(self, name: str) -> list[int]:
        """Processes running in host ``name``'s namespace."""
        out = run("ip", "netns", "pids", self.hosts[name].namespace, check=False).stdout
        return [int(p) for p in out.split()]

    def listening(self, name: str) -> list[str]:
        """``address:port`` of every TCP socket listening on host ``name`` (``ss`` in its namespace)."""
        out = self.in_ns(name, "ss", "-Hltn").stdout
        return [line.split()[3] for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        for host in self.hosts.values():
            procs = [p for p in map(_process, self.pids(host.name)) if p]
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGKILL)
            psutil.wait_procs(procs, timeout=10)
            run("ip", "netns", "del", host.namespace, check=False)
            run("ip", "link", "del", host.bridge_end, check=False)  # gone with its peer already
        run("ip", "link", "del", self.bridge, check=False)
        self.hosts.clear()


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None
