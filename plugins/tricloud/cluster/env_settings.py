"""Backend settings read from ``TRICLOUD_*`` variables with per-operator overrides, shared by every cloud backend.

A value comes from the operator's ``backend_kwargs`` first, then the environment, then a default; a
required one that is missing fails fast with ``ValueError`` naming the variable to set.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from include.errors import ConfigError


def setting(overrides: Mapping[str, Any], key: str, env: str, default: Any = None, *, required: str = "") -> Any:
    """``overrides[key]``, else ``$env``, else ``default``.

    :param required: when non-empty and no value is found, raise ``ValueError`` with this hint.
    """
    value = overrides.get(key)
    if value is None:
        value = os.environ.get(env) or None
    if value is None:
        value = default
    if value is None and required:
        raise ConfigError(f"{env} is not set: {required}")
    return value


def parse_tags(value: str | Mapping[str, str] | None, env: str) -> dict[str, str]:
    """Tags from a mapping or from ``key=value,key=value`` (or a JSON object); ``ValueError`` naming ``env``."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    text = str(value).strip()
    if text.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(text).items()}
    tags = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{env}: {part!r} is not key=value (e.g. team=data,env=prod)")
        tags[key.strip()] = val.strip()
    return tags


def backend_overrides(
    overrides: Mapping[str, Any], settings_class: type, *, backend: str, conn_field: str
) -> dict[str, Any]:
    """A checked copy of an operator's ``backend_kwargs`` for a backend whose settings are ``settings_class``.

    The operators pass ``conn_id`` when a task sets one: it is taken as ``conn_field`` (the backend's own
    connection field, e.g. ``aws_conn_id``) unless that is given too, and dropped.

    :param backend: the backend's name, for the error message.
    :raises ConfigError: a key that is not a field of ``settings_class`` (the known ones listed).
    """
    checked = dict(overrides)
    conn_id = checked.pop("conn_id", None)
    if conn_id:
        checked.setdefault(conn_field, conn_id)
    known = {f.name for f in fields(settings_class)}
    unknown = sorted(set(checked) - known)
    if unknown:
        raise ConfigError(f"{backend} backend: unknown setting(s) {unknown}; known: {sorted(known)}")
    return checked


@dataclass(frozen=True)
class IdleTimeoutBounds:
    """What a service accepts as the idle time after which it ends a cluster / application.

    :param low: least value, inclusive, in ``unit``.
    :param high: greatest value, inclusive, in ``unit``.
    :param unit: ``seconds`` or ``minutes``, as the service's API field counts.
    :param service: the service's name, for error messages.
    """

    low: int
    high: int
    unit: str
    service: str


def idle_timeout_setting(
    overrides: Mapping[str, Any], key: str, env: str, default: int, bounds: IdleTimeoutBounds
) -> int:
    """The idle timeout (in ``bounds.unit``) as :func:`setting` reads it, checked against the service's bounds.

    :raises ConfigError: not a whole number, or outside ``bounds`` (both naming ``env``).
    """
    try:
        value = int(setting(overrides, key, env, default))
    except ValueError:
        raise ConfigError(f"{env} must be whole {bounds.unit} ({bounds.low} … {bounds.high})") from None
    if not bounds.low <= value <= bounds.high:
        raise ConfigError(f"{env}={value}: {bounds.service} accepts {bounds.low} … {bounds.high} {bounds.unit}")
    return value


def created_by(overrides: Mapping[str, Any]) -> str:
    """Who creates a resource, for its ``created-by`` tag / label: the ``created_by`` override, else ``host:pid``."""
    return str(overrides.get("created_by") or f"{socket.gethostname()}:{os.getpid()}")
