"""The one JSON logger (Powertools), with the call as correlation id and privacy by default.

Every module logs through ``logger``. Invocation-scoped keys (``call_sid``, ``connection_id``) are
bound with :func:`bind` and cleared with :func:`reset`; they are context-local, so concurrent
invocations in the local stand-in (threads) never mix their keys.

Transcript text and phone numbers never reach the logs unless ``LOG_SENSITIVE_DATA=true``: log
:func:`text_summary`, :func:`mask_phone` or :func:`error_summary` instead of the value.
"""

from __future__ import annotations

import os
import re
import threading

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

from voice_agent import env_names as names

logger = Logger(service=os.environ.get(names.POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))

_DIGITS = re.compile(r"\d")
# A quoted value, with backslash escapes (Python's repr of a string holding both quote kinds) and
# an unterminated quote masked to the end.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*(?:'|$)|\"(?:[^\"\\]|\\.)*(?:\"|$)", re.DOTALL)


def bind(**keys: object) -> None:
    """Add keys to every log line of this invocation (context-local)."""
    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def reset() -> None:
    """Forget the previous invocation's keys (call at the start of every invocation)."""
    logger.thread_safe_clear_keys()


_cold = threading.Event()


def start_invocation(context: object) -> None:
    """Forget the previous invocation's keys and add the Lambda context's, under Powertools' names
    (``function_name``, ``function_request_id``, ``function_arn``, ``function_memory_size``,
    ``cold_start``), as ``Logger.inject_lambda_context`` would. That decorator appends its keys
    process-wide; these are context-local, so the local stand-in's concurrent invocations (threads
    of one process) each keep their own request id."""
    reset()
    cold_start = not _cold.is_set()
    _cold.set()
    try:
        model = build_lambda_context_model(context)
    except AttributeError:  # not a Lambda context (a test calling the handler directly)
        return
    bind(cold_start=cold_start, **model.__dict__)


def sensitive_logging_enabled() -> bool:
    return os.environ.get(names.LOG_SENSITIVE_DATA, "").strip().lower() in {"1", "true", "yes", "on"}


def text_summary(text: str) -> dict[str, object]:
    """What may be logged about caller or agent speech: its length, and the text only if enabled."""
    if sensitive_logging_enabled():
        return {"chars": len(text), "text": text}
    return {"chars": len(text)}


def error_summary(message: str, limit: int = 200) -> str:
    """An error message as the logs may hold it: quoted values (a tool's arguments, chosen by the
    model and able to carry anything the caller said) become their length, unless enabled."""
    if not sensitive_logging_enabled():
        message = _QUOTED.sub(lambda m: f"<{len(m.group()) - 2} chars>", message)
    return message[:limit]


def mask_phone(number: str | None) -> str | None:
    """``+18005550100`` -> ``+*******0100``: enough to tell calls apart, not to identify a caller."""
    if not number or sensitive_logging_enabled():
        return number
    digits = _DIGITS.findall(number)
    if len(digits) <= 4:
        return "*" * len(number)
    keep = 4
    seen = 0
    out = []
    for ch in reversed(number):
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= keep else "*")
        else:
            out.append(ch)
    return "".join(reversed(out))
