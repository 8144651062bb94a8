"""Backend settings read from ``TRICLOUD_*`` variables with per-operator overrides, shared by every cloud backend.

A value comes from the operator's ``backend_kwargs`` first, then the environment, then a default; a
required one that is missing fails fast with ``ValueError`` naming the variable to set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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
