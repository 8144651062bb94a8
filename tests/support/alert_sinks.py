"""Where a test's alerts land: a real SMTP server (aiosmtpd) and a webhook receiver (stdlib), on 127.0.0.1.

:func:`alert_sinks_running` starts both on free ports and yields :class:`AlertSinks`: what each received,
and ``env``, the ``AIRFLOW_CONN_*`` variables that route a local Airflow's alerts to them. The SMTP
connection carries a password (the server requires AUTH) and the webhook one a token and a secret path,
so a test can check that no secret appears in what was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SMTP_PASSWORD = "smtp-pw-Zq81xT"  # pragma: allowlist secret (a test value, asserted NOT to appear in any alert)
WEBHOOK_TOKEN = "hook-token-Yk27wR"  # pragma: allowlist secret
WEBHOOK_PATH = "/services/T000/B000/path-secret-Pm44vD"
EMAIL_TO = "oncall@tricloud.test"


@dataclass
class AlertSinks:
    """What the SMTP server and the webhook receiver got (appended by their threads), and the env to reach them."""

    env: dict[str, str]
    mails: list[dict] = field(default_factory=list)  # {"to", "subject", "body", "raw"}
    posts: list[dict] = field(default_factory=list)  # {"path", "headers", "body" (parsed JSON), "raw"}
    secrets: tuple[str, ...] = (SMTP_PASSWORD, WEBHOOK_TOKEN, WEBHOOK_PATH.rsplit("/", 1)[1])


@contextmanager
def alert_sinks_running() -> Iterator[AlertSinks]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    sinks = AlertSinks(env={})

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls this hook name
            msg = message_from_bytes(envelope.content, policy=policy.default)
            body = msg.get_body(("html", "plain"))
            sinks.mails.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(msg["Subject"]),
                    "body": body.get_content() if body is not None else "",
                    "raw": envelope.content.decode("utf-8", "replace"),
                }
            )
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.password.decode() == SMTP_PASSWORD)

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            sinks.posts.append({"path": self.path, "headers": dict(self.headers), "body": body, "raw": raw})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    from stack.ports import free_port

    smtp_port = free_port()
    smtp = Controller(
        Mailbox(), hostname="127.0.0.1", port=smtp_port, authenticator=authenticator, auth_require_tls=False
    )
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    sinks.env = {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "login": "alerts@tricloud.test",
                "password": SMTP_PASSWORD,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10},
            }
        ),
        "AIRFLOW_CONN_TRICLOUD_WEBHOOK": json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{http.server_address[1]}{WEBHOOK_PATH}",
                "login": "tricloud",
                "password": WEBHOOK_TOKEN,
            }
        ),
        "TRICLOUD_ALERT_EMAIL_TO": EMAIL_TO,
    }
    try:
        yield sinks
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()
