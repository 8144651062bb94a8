"""Where an alert goes: every *configured* channel, each the provider's own notifier, routed by a connection.

- e-mail: the smtp provider's ``SmtpNotifier`` over connection ``smtp_default`` (:data:`SMTP_CONN_ID`),
  to ``TRICLOUD_ALERT_EMAIL_TO`` (comma-separated; default :data:`DEFAULT_EMAIL_TO`);
- webhook: the http provider's ``HttpNotifier`` POSTing Slack-style JSON ``{"text": …}`` to connection
  ``tricloud_webhook`` (:data:`WEBHOOK_CONN_ID`; host = the webhook URL, its path kept).

A channel whose connection does not exist is skipped with one log line: nothing is looked up at DAG
parse time (no connection, no network, no provider import), so the check happens when an alert is due.
Every secret Airflow knows of (connection passwords, extras) is masked, and the channels' own passwords
and extras are removed from the text before it is sent. What an alert says and when one is due:
:mod:`tricloud.alerts`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from airflow.sdk.bases.notifier import BaseNotifier

if TYPE_CHECKING:
    from tricloud.alerts import Alert

log = logging.getLogger(__name__)

EMAIL_TO_ENV = "TRICLOUD_ALERT_EMAIL_TO"
DEFAULT_EMAIL_TO = "data-platform@localhost"
SMTP_CONN_ID = "smtp_default"
WEBHOOK_CONN_ID = "tricloud_webhook"


def _connection(conn_id: str):
    """The connection, or None when it is not configured (the channel is then skipped)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _scrub(text: str, connections: list) -> str:
    """The text with every secret masked: Airflow's masker, then the channels' passwords and secret extras."""
    from airflow.sdk._shared.secrets_masker import redact, should_hide_value_for_key

    text = str(redact(text))
    for conn in connections:
        secrets = [conn.password] + [
            str(v) for k, v in (conn.extra_dejson or {}).items() if should_hide_value_for_key(k)
        ]
        for secret in secrets:
            if secret:
                text = text.replace(str(secret), "***")
    return text


def sender(smtp) -> str:
    """The alert's sender: the connection's ``from_email`` extra (the smtp provider's own field), else its
    login when that is an address, else ``tricloud@<this host>``. Never a login that is no address: relays
    such as SendGrid (login ``apikey``) or SES (an access key id) reject it as sender, and it would show the
    relay user to every recipient."""
    login = smtp.login or ""
    return (smtp.extra_dejson or {}).get("from_email") or (
        login if "@" in login else f"tricloud@{socket.gethostname()}"
    )


def send(alert: Alert) -> list[str]:
    """Send an alert through every configured channel; returns the channels used ("email", "webhook").

    A channel that fails to send is logged and the other one still sends; an alert never raises.
    """
    smtp, webhook = _connection(SMTP_CONN_ID), _connection(WEBHOOK_CONN_ID)
    configured = [c for c in (smtp, webhook) if c is not None]
    subject, text = _scrub(alert.subject, configured), _scrub(alert.text, configured)
    sent: list[str] = []
    if smtp is None:
        log.info("No connection %r: e-mail alert not sent", SMTP_CONN_ID)
    else:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = [a.strip() for a in os.environ.get(EMAIL_TO_ENV, DEFAULT_EMAIL_TO).split(",") if a.strip()]
        html = "<pre>" + text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "</pre>"
        notifier = SmtpNotifier(
            to=to, subject=subject, html_content=html, smtp_conn_id=SMTP_CONN_ID, from_email=sender(smtp)
        )
        sent += _try("email", notifier)
    if webhook is None:
        log.info("No connection %r: webhook alert not sent", WEBHOOK_CONN_ID)
    else:
        from airflow.providers.http.notifications.http import HttpNotifier
        from airflow.sdk.log import mask_secret

        if webhook.host:  # a Slack-style URL carries its token in the path: a send error would log it
            mask_secret(webhook.host)

        notifier = HttpNotifier(
            http_conn_id=WEBHOOK_CONN_ID, json={"text": text}, headers={"Content-Type": "application/json"}
        )
        sent += _try("webhook", notifier)
    return sent


def _try(channel: str, notifier: BaseNotifier) -> list[str]:
    try:
        # notify() directly, not notifier(context): the text is final, nothing to render from Jinja.
        notifier.notify({})
    except Exception:
        log.exception("The %s alert could not be sent", channel)
        return []
    log.info("Alert sent by %s", channel)
    return [channel]
