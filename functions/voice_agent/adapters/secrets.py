"""Secrets: read from Secrets Manager once per cold start, cached; plain values locally."""

from __future__ import annotations

import json
import threading

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.adapters import aws_clients
from voice_agent.errors import ConfigurationError

_cache: dict[str, str] = {}
_lock = threading.Lock()


def secret_value(*, arn: str | None, plain: str | None, name: str) -> str | None:
    """The secret's value: from ``arn`` (Secrets Manager) if set, else ``plain`` (local), else None.

    A secret stored as JSON ``{"value": "..."}`` or as a bare string both work.
    """
    if arn:
        with _lock:
            if arn not in _cache:
                _cache[arn] = _fetch(arn, name)
            return _cache[arn]
    return plain


def _fetch(arn: str, name: str) -> str:
    try:
        raw = aws_clients.secrets_manager().get_secret_value(SecretId=arn)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise ConfigurationError(f"cannot read the {name} secret ({type(exc).__name__})") from exc
    value = raw.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("value"), str):
            value = data["value"].strip()
    if not value or value.startswith("REPLACE"):
        raise ConfigurationError(f"the {name} secret is empty or still holds its placeholder")
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()
