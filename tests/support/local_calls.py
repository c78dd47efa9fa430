"""Helpers for tests that drive the local stack: a model that is the demo model except where a test
scripts it, a caller driven step by step (drops and barge-ins at chosen moments), and the runtime's
JSON logs captured as the Lambdas would write them to CloudWatch."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from local.caller.phone import Call, CallerIdentity, CallResult, RelaySession, Reply
from local.caller.transcript import PrintedTranscript
from local.demo_model import DemoBrain
from local.openai_server import Reply as ModelReply
from local.openai_server import split_tokens
from voice_agent.log import logger

# -- the model ------------------------------------------------------------------------------------


def last_user_text(request: Mapping[str, Any]) -> str:
    for message in reversed(request.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


@dataclass
class RoutingBrain:
    """The demo model, except for requests whose latest caller message holds a marker a test
    scripted: those get the scripted replies in order (faults, injections, long replies), then the
    demo model again. Markers are plain words without digits (the demo model looks up any number
    of three digits or more as an order)."""

    fallback: DemoBrain = field(default_factory=lambda: DemoBrain(history=20_000))
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20_000))
    _routes: dict[str, list[ModelReply]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, marker: str, *replies: ModelReply | str) -> None:
        with self._lock:
            queue = self._routes.setdefault(marker, [])
            queue.extend(ModelReply(tokens=split_tokens(r)) if isinstance(r, str) else r for r in replies)

    def pending(self, marker: str) -> int:
        with self._lock:
            return len(self._routes.get(marker, []))

    def reply(self, request: dict[str, Any]) -> ModelReply:
        said = last_user_text(request)
        with self._lock:
            self.requests.append(request)
            for marker, queue in self._routes.items():
                if marker in said and queue:
                    return queue.pop(0)
        return self.fallback.reply(request)

    def requests_with(self, marker: str) -> list[dict[str, Any]]:
        """Every model request whose messages mention ``marker`` (in any role), in order."""
        with self._lock:
            requests = list(self.requests)
        return [r for r in requests if marker in json.dumps(r.get("messages", []))]


def messages(request: Mapping[str, Any], role: str) -> list[str]:
    return [str(m.get("content") or "") for m in request.get("messages", []) if m.get("role") == role]


# -- the caller -----------------------------------------------------------------------------------

Program = Callable[[RelaySession], Awaitable[None]]


class ProgramDriver:
    """Runs one program per relay session (the first socket, then each reconnect); a session whose
    program returns while it is still open is hung up by the call, as a caller would."""

    def __init__(self, *programs: Program) -> None:
        self._programs = deque(programs)
        self.sessions = 0

    async def on_session(self, session: RelaySession) -> None:
        self.sessions += 1
        if self._programs:
            await self._programs.popleft()(session)


async def say(session: RelaySession, text: str, timeout_s: float = 30.0) -> Reply:
    """Say ``text`` and listen until the reply is complete (``last``), ends the session, or times out."""
    reply = await session.prompt(text)
    await session.wait(reply, timeout_s)
    return reply


async def say_until(session: RelaySession, text: str, chars: int, timeout_s: float = 30.0) -> Reply:
    """Say ``text`` and listen until ``chars`` characters of the reply arrived (or it is over)."""
    reply = await session.prompt(text)
    await reply.until_heard(chars, timeout_s)
    return reply


@dataclass
class PlacedCall:
    result: CallResult
    transcript: list[str]

    @property
    def replies(self) -> list[Reply]:
        return self.result.replies()

    def explain(self) -> str:
        return "\n".join(self.transcript)


async def place_call(
    voice_url: str,
    auth_token: str | None,
    *programs: Program,
    identity: CallerIdentity | None = None,
    **call_options: Any,
) -> PlacedCall:
    """``call_options``: what Twilio's side does differently (``speech`` outages and speaking rate,
    ``reconnect_setup``, ``replay_last``: see ``local.caller.phone.Call``)."""
    lines: list[str] = []
    call = Call(
        transcript=PrintedTranscript(out=lambda _: None, lines=lines),
        auth_token=auth_token,
        identity=identity,
        **call_options,
    )
    result = await call.dial(voice_url, ProgramDriver(*programs))
    return PlacedCall(result=result, transcript=lines)


# -- logs -------------------------------------------------------------------------------------------


class JsonLogCapture(logging.Handler):
    """The runtime's log lines, formatted exactly as in CloudWatch (Powertools JSON)."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.setFormatter(logger.registered_formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured_logs() -> Iterator[JsonLogCapture]:
    capture = JsonLogCapture()
    std = logging.getLogger(logger.name)
    std.addHandler(capture)
    try:
        yield capture
    finally:
        std.removeHandler(capture)
