"""The Spark service of one cluster VM: what the VM image runs at boot (``master`` or ``worker``).

``python -m include.spark_service master --host 10.0.0.4 --secret-file /etc/tricloud/spark-secret``
``python -m include.spark_service worker --host 10.0.0.5 --master spark://10.0.0.4:7077 --secret-file …``

The image of the ``azure-vm`` backend (Java 17, Python and the same pyspark as the Airflow workers) runs
this as a boot service (systemd ``ExecStart``); the tests' fake of Azure Resource Manager runs the very
same command when it "starts" a VM, inside that VM's network namespace. It writes the daemon's
``spark-defaults.conf`` (mode 0600) into ``--conf-dir`` and replaces itself with ``spark-class`` in the
foreground, so stopping the service (deallocating the VM) stops the daemon.

Safe by default, whatever the image's network: every Spark socket (RPC, web UI, block manager,
executors) binds to ``--host`` (``SPARK_LOCAL_IP``), which must be a private address (RFC 1918 /
unique-local; loopback only with ``--allow-loopback``), never ``0.0.0.0``. ``spark.authenticate`` is on
with the shared secret read from ``--secret-file`` (never on a command line, where ``ps`` shows it); the
worker hands it to its executors through the environment, as Spark standalone does. The master's REST
submission port stays disabled (Spark's default). No Airflow here.

Errors: :class:`ValueError` naming the option to fix (a public or wildcard ``--host``, an empty or
missing secret file).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: Seconds without a heartbeat before the master drops a worker (Spark's default is 60): a lost VM's
#: cores leave the cluster's books soon enough for the scheduler to stop offering them.
WORKER_TIMEOUT_S = 15


def require_private(host: str, allow_loopback: bool = False) -> str:
    """``host`` if it is a private IP address; :class:`ValueError` naming ``--host`` otherwise.

    A name is refused too: it could resolve to a public address, and Spark binds to what it resolves to.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--host {host!r} is not an IP address: pass the VM's private IP (e.g. 10.0.0.4)") from None
    if address.is_loopback and allow_loopback:
        return host
    if address.is_unspecified or address.is_loopback or not address.is_private or address.is_link_local:
        raise ValueError(
            f"--host {host} is not a private network address: pass the VM's private IP "
            "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or fd00::/8); Spark must not listen elsewhere"
        )
    return host


def read_secret(path: str | Path) -> str:
    """The shared ``spark.authenticate`` secret from ``path`` (stripped); ValueError when missing or empty."""
    try:
        secret = Path(path).read_text().strip()
    except OSError as err:
        raise ValueError(f"--secret-file {path}: {err.strerror}; write the cluster's shared secret there") from err
    if not secret:
        raise ValueError(f"--secret-file {path} is empty: write the cluster's shared secret there")
    return secret


def defaults(secret: str, role: str) -> dict[str, str]:
    """The daemon's ``spark-defaults.conf`` entries."""
    conf = {"spark.authenticate": "true", "spark.authenticate.secret": secret, "spark.master.rest.enabled": "false"}
    if role == "master":
        conf["spark.worker.timeout"] = str(WORKER_TIMEOUT_S)
    return conf


def write_defaults(conf_dir: Path, conf: dict[str, str]) -> Path:
    """Write ``spark-defaults.conf`` readable by its owner only (it holds the secret)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "spark-defaults.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k} {v}\n" for k, v in conf.items())
    os.chmod(path, 0o600)
    return path


def command(args: argparse.Namespace) -> list[str]:
    """``spark-class`` and its arguments for the role."""
    spark_class = str(Path(sys.executable).parent / "spark-class")
    if args.role == "master":
        return [
            spark_class,
            MASTER_CLASS,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--webui-port",
            str(args.webui_port),
        ]
    return [
        spark_class,
        WORKER_CLASS,
        args.master,
        "--host",
        args.host,
        "--cores",
        str(args.cores),
        "--memory",
        args.memory,
        "--webui-port",
        str(args.webui_port),
    ]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.spark_service", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["master", "worker"])
    parser.add_argument("--host", required=True, help="the VM's private IP; every Spark socket binds to it")
    parser.add_argument("--secret-file", required=True, help="file holding the shared spark.authenticate secret")
    parser.add_argument("--work-dir", default="/var/lib/tricloud/spark", help="logs, conf and executor dirs")
    parser.add_argument("--port", type=int, default=7077, help="master RPC port")
    parser.add_argument("--webui-port", type=int, default=8080)
    parser.add_argument("--master", help="worker: spark://<master private IP>:7077")
    parser.add_argument("--cores", type=int, default=1, help="worker: cores offered")
    parser.add_argument("--memory", default="1g", help="worker: memory offered")
    parser.add_argument("--allow-loopback", action="store_true", help="single-machine development only")
    args = parser.parse_args(argv)
    if args.role == "worker" and not args.master:
        parser.error("a worker needs --master spark://<master private IP>:<port>")
    return args


def main(argv: list[str] | None = None) -> None:
    """Validate, write the daemon's defaults, and exec ``spark-class`` (never returns on success)."""
    args = parse(argv)
    require_private(args.host, args.allow_loopback)
    work = Path(args.work_dir)
    conf_dir = write_defaults(work / "conf", defaults(read_secret(args.secret_file), args.role)).parent
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": args.host,
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_WORKER_DIR": str(work / "work"),
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    cmd = command(args)
    os.execve(cmd[0], cmd, env)  # noqa: S606 (a fixed argv, no shell: the service becomes the daemon)


if __name__ == "__main__":
    main()
