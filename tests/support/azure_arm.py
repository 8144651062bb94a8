"""A small local fake of the Azure Resource Manager compute endpoints the provider's hook calls.

Follows the Microsoft.Compute REST API **2026-04-01** (the default api-version of azure-mgmt-compute
39.0.0), virtual machines only:

- ``GET  …/virtualMachines/{vm}`` (404 ``ResourceNotFound`` for an unknown VM),
- ``GET  …/virtualMachines/{vm}/instanceView`` (``ProvisioningState/…`` and ``PowerState/…`` statuses),
- ``POST …/virtualMachines/{vm}/start`` and ``…/deallocate``: 202 with ``Azure-AsyncOperation`` and
  ``Retry-After: 1``, then ``GET …/locations/{loc}/operations/{id}`` answers ``InProgress`` until the
  VM reached its state, then ``Succeeded`` (the ARM long-running-operation protocol azure-core polls).

"Starting" a VM runs its boot command (what the VM image runs at boot: ``include.spark_service``,
inside the VM's network namespace) in a process group of its own; "deallocating" kills that group.
Requests are counted by ``(method, vm, action)`` in :attr:`FakeArm.calls`.

How the real, unchanged SDK reaches it (configuration only, see :meth:`FakeArm.client_env`): the SDK's
base URL is fixed to ``https://management.azure.com``, so the fake is also that host's **HTTPS proxy**
(``HTTPS_PROXY``): it answers ``CONNECT management.azure.com:443`` itself and terminates TLS with a
certificate for that name, signed by a throw-away CA the client trusts through ``REQUESTS_CA_BUNDLE``
(azure-core refuses bearer tokens over plain HTTP). Any other CONNECT is refused: nothing leaves this
machine. The token comes from the fake too, as an App Service managed identity (``IDENTITY_ENDPOINT``
and ``IDENTITY_HEADER``, plain HTTP on 127.0.0.1, which azure-identity's DefaultAzureCredential uses).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2026-04-01"
ARM_HOST = "management.azure.com"
LOCATION = "westeurope"
_VM = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachines/(?P<vm>[^/]+)(?:/(?P<action>instanceView|start|deallocate))?$",
    re.I,
)
_OP = re.compile(r"^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+/operations/(?P<op>[^/]+)$", re.I)


@dataclass
class FakeVm:
    """One VM: its power state and the boot command its image runs (None: boots to nothing)."""

    name: str
    resource_group: str
    boot: list[str] | None = None
    env: dict[str, str] | None = None
    power: str = "deallocated"
    process: subprocess.Popen | None = None
    log: Path | None = None


@dataclass
class Operation:
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class FakeArm:
    """The fake server; :meth:`start` it, give clients :meth:`client_env`, :meth:`close` it."""

    def __init__(self, state_dir: Path, subscription: str = "00000000-0000-0000-0000-00000000fa4e") -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.subscription = subscription
        self.vms: dict[tuple[str, str], FakeVm] = {}
        self.ops: dict[str, Operation] = {}
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.identity_header = secrets.token_hex(8)
        self.token = secrets.token_hex(16)
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -- VMs ------------------------------------------------------------------------------------
    def add_vm(self, resource_group: str, name: str, boot: list[str] | None = None, env=None) -> FakeVm:
        vm = FakeVm(name, resource_group, boot, env, log=self.dir / f"{name}.log")
        self.vms[(resource_group.lower(), name.lower())] = vm
        return vm

    def vm(self, resource_group: str, name: str) -> FakeVm:
        return self.vms[(resource_group.lower(), name.lower())]

    def power_on(self, vm: FakeVm) -> None:
        """Boot ``vm``: run its image's boot command (as Azure does on start), then mark it running."""
        if vm.power == "running":
            return
        vm.power = "starting"
        if vm.boot:
            with open(vm.log, "ab") as log:
                vm.process = subprocess.Popen(
                    vm.boot,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **(vm.env or {})},
                    start_new_session=True,
                )
        vm.power = "running"

    def power_off(self, vm: FakeVm) -> None:
        """Deallocate ``vm``: its processes end with it."""
        vm.power = "deallocating"
        proc, vm.process = vm.process, None
        if proc and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        vm.power = "deallocated"

    def _lro(self, work) -> str:
        op_id = uuid.uuid4().hex
        op = self.ops[op_id] = Operation()

        def run() -> None:
            try:
                work()
            except Exception as err:  # reported as the operation's error
                op.error = str(err)
            op.done.set()

        threading.Thread(target=run, daemon=True).start()
        return op_id

    # -- server ---------------------------------------------------------------------------------
    def start(self) -> FakeArm:
        self.ca_file, self.tls = _tls_context(self.dir)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def client_env(self) -> dict[str, str]:
        """Environment that points the unchanged SDK / hook at this fake (no code change)."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {
            # Both spellings: urllib and requests prefer the lower-case one when a CI machine sets it.
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "REQUESTS_CA_BUNDLE": str(self.ca_file),
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.port}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
        }

    def close(self) -> None:
        for vm in self.vms.values():
            self.power_off(vm)
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _handler(arm: FakeArm):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args) -> None:  # quiet
            pass

        def reply(self, code: int, body: dict | None = None, headers: dict | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def error(self, code: int, err: str, message: str) -> None:
            self.reply(code, {"error": {"code": err, "message": message}})

        def do_CONNECT(self) -> None:
            if self.path != f"{ARM_HOST}:443":
                self.send_error(403, f"this fake proxies {ARM_HOST} only")
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            tunnel = arm.tls.wrap_socket(self.connection, server_side=True)
            Handler(tunnel, self.client_address, self.server)  # serves the tunnel's requests
            self.close_connection = True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/msi/token":
                return self.token(url)
            if not self.authorised():
                return
            if m := _OP.match(url.path):
                op = arm.ops.get(m["op"])
                if op is None:
                    return self.error(404, "NotFound", "no such operation")
                status = "InProgress" if not op.done.is_set() else ("Failed" if op.error else "Succeeded")
                body = {"name": m["op"], "status": status}
                if op.error:
                    body["error"] = {"code": "InternalError", "message": op.error}
                return self.reply(200, body, {"Retry-After": "1"} if status == "InProgress" else None)
            m = _VM.match(url.path)
            if not m or m["action"] not in (None, "instanceView"):
                return self.error(404, "NotFound", f"not emulated: GET {url.path}")
            if vm := self.find(m, "GET"):
                if m["action"] is None:
                    return self.reply(200, _vm_body(arm, vm))
                return self.reply(200, _instance_view(vm))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.authorised():
                return
            m = _VM.match(url.path)
            if not m or m["action"] not in ("start", "deallocate"):
                return self.error(404, "NotFound", f"not emulated: POST {url.path}")
            if vm := self.find(m, "POST"):
                work = arm.power_on if m["action"] == "start" else arm.power_off
                op_id = arm._lro(lambda: work(vm))
                op_url = (
                    f"https://{ARM_HOST}/subscriptions/{arm.subscription}/providers/Microsoft.Compute/locations/"
                    f"{LOCATION}/operations/{op_id}?api-version={API_VERSION}"
                )
                self.reply(202, None, {"Azure-AsyncOperation": op_url, "Retry-After": "1"})

        def find(self, m: re.Match, method: str) -> FakeVm | None:
            arm.calls[(method, m["vm"], m["action"] or "get")] += 1
            vm = arm.vms.get((m["rg"].lower(), m["vm"].lower()))
            if vm is None or m["sub"] != arm.subscription:
                self.error(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.Compute/virtualMachines/{m['vm']}' under resource group "
                    f"'{m['rg']}' was not found.",
                )
            return vm

        def authorised(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {arm.token}":
                self.error(401, "AuthenticationFailed", "missing or wrong bearer token")
                return False
            return True

        def token(self, url) -> None:
            if self.headers.get("X-IDENTITY-HEADER") != arm.identity_header:
                return self.error(401, "Unauthorized", "wrong X-IDENTITY-HEADER")
            resource = parse_qs(url.query).get("resource", [""])[0]
            expires = str(int(time.time()) + 3600)
            self.reply(
                200, {"access_token": arm.token, "expires_on": expires, "resource": resource, "token_type": "Bearer"}
            )

    return Handler


def _vm_body(arm: FakeArm, vm: FakeVm) -> dict:
    return {
        "name": vm.name,
        "id": f"/subscriptions/{arm.subscription}/resourceGroups/{vm.resource_group}/providers/"
        f"Microsoft.Compute/virtualMachines/{vm.name}",
        "type": "Microsoft.Compute/virtualMachines",
        "location": LOCATION,
        "properties": {"provisioningState": "Succeeded", "hardwareProfile": {"vmSize": "Standard_D4s_v5"}},
    }


def _instance_view(vm: FakeVm) -> dict:
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "time": now},
            {"code": f"PowerState/{vm.power}", "level": "Info", "displayStatus": f"VM {vm.power}"},
        ]
    }


def _tls_context(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A throw-away CA (written to ``ca.pem`` for clients) and a server context for management.azure.com."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(ARM_HOST)]), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("tricloud test CA", ca_key, "tricloud test CA", ca_key, True)
    leaf = cert(ARM_HOST, leaf_key, "tricloud test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    ca_file, leaf_file, key_file = directory / "ca.pem", directory / "arm.pem", directory / "arm.key"
    ca_file.write_bytes(ca.public_bytes(pem))
    leaf_file.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf_file, key_file)
    return ca_file, context
