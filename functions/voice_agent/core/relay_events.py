"""The informational frames of a relay session: Twilio's ``error`` reports, ``info`` telemetry and
``configUpdated`` events. Each is logged (codes and provider names only, never text) and, where a
metric says something about the call, counted. Nothing here answers Twilio."""

from __future__ import annotations

import re
from typing import Final

from voice_agent import metric_names as metric
from voice_agent.log import logger, sensitive_logging_enabled
from voice_agent.protocol.inbound import ConfigUpdated, ErrorReport, Info

_ERROR_CODE: Final = re.compile(r"\b(6\d{4})\b")
_SAFE_INFO: Final = frozenset({"roundTripDelayMs", "agentSpeaking", "clientSpeaking"})


def on_error(message: ErrorReport) -> None:
    code = _ERROR_CODE.search(message.description)
    extra: dict[str, object] = {"twilio_error": code.group(1) if code else None}
    if sensitive_logging_enabled():
        extra["description"] = message.description
    logger.warning("twilio reported an error", extra=extra)


def on_info(message: Info) -> None:
    value = message.value if message.name in _SAFE_INFO else f"<{len(message.value)} chars>"
    logger.debug("info", extra={"name": message.name, "value": value})


def on_config_updated(message: ConfigUpdated) -> str:
    """Twilio switched the session's configuration: a provider failover (``<Failover>``) or a
    ``config`` message applied. Returns the metric that counts it."""
    logger.info(
        "configuration updated by Twilio",
        extra={
            "tts_provider": message.tts_provider,
            "transcription_provider": message.transcription_provider,
            "language": message.language,
        },
    )
    return metric.CONFIG_UPDATES
