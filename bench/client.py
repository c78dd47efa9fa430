"""A minimal ConversationRelay caller for the benchmark: the same code drives both servers.

It opens the socket (signed, when given an auth token, as Twilio signs the upgrade), sends
``setup``, and then one ``prompt`` at a time, timing from just before the prompt is written to the
arrival of the first ``text`` frame and of the ``last: true`` frame. Timestamps are taken in the
reader as frames arrive, on the same event loop for both servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voice_agent.call_tokens import derive_key, relay_url, token_for
from voice_agent.signatures import sign


@dataclass
class TurnTiming:
    first_text_s: float | None = None  # prompt sent -> first text frame
    last_s: float | None = None  # prompt sent -> the frame with last: true
    frames: int = 0  # every frame the reply arrived in
    text_frames: int = 0
    text: str = ""
    first_frame: str | None = None  # the first text frame's token
    other: list[dict[str, Any]] = field(default_factory=list)  # error frames, end, anything else
    early_frames: int = 0  # frames that arrived between the partial prompts and the final one

    @property
    def completed(self) -> bool:
        return self.last_s is not None


@dataclass(frozen=True)
class Partials:
    """How the caller's words arrive before the final prompt (Twilio's ``partialPrompts``)."""

    texts: tuple[str, ...]  # cumulative: each the whole utterance so far
    interval_s: float = 0.15
    final_after_s: float = 0.5

    @classmethod
    def of(cls, text: str) -> Partials:
        """A partial after each word of ``text``."""
        words = text.split()
        return cls(tuple(" ".join(words[: n + 1]) for n in range(len(words))))


class RelayClient:
    def __init__(self, url: str, *, auth_token: str | None = None, call_sid: str | None = None) -> None:
        self.url = url
        self.auth_token = auth_token
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self._ws: ClientConnection | None = None
        self._frames: asyncio.Queue[tuple[float, dict[str, Any] | None]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def for_call(cls, relay: str, auth_token: str) -> RelayClient:
        """A new call's client on the URL Twilio dials for it: the call's own, with its token, as
        ``/voice`` writes it (``$connect``'s authorizer then names the call in every frame's event)."""
        call_sid = "CA" + uuid.uuid4().hex
        url = relay_url(relay, call_sid, token_for(derive_key(auth_token), call_sid), 0)
        return cls(url, auth_token=auth_token, call_sid=call_sid)

    async def open(self) -> None:
        headers = {"X-Twilio-Signature": sign(self.auth_token, self.url)} if self.auth_token else {}
        self._ws = await connect(
            self.url, additional_headers=headers, open_timeout=35, ping_interval=None, compression=None
        )
        self._reader = asyncio.create_task(self._read(self._ws))
        await self._send(
            {
                "type": "setup",
                "sessionId": "VX" + uuid.uuid4().hex,
                "accountSid": "AC" + "0" * 32,
                "callSid": self.call_sid,
                "from": "+15555550123",
                "to": "+15555550199",
                "direction": "inbound",
                "callType": "PSTN",
                "callStatus": "RINGING",
                "customParameters": {},
            }
        )

    async def turn(self, text: str, timeout_s: float = 30.0, partials: Partials | None = None) -> TurnTiming:
        """Say ``text``; return when the reply's ``last`` frame (or ``end``) arrives, or on timeout.
        ``partials``: first the cumulative ``last: false`` prompts Twilio sends while the caller
        talks; the time is still counted from the final prompt."""
        while not self._frames.empty():  # nothing should be pending; do not credit it to this turn
            self._frames.get_nowait()
        timing = TurnTiming()
        if partials is not None:
            timing.early_frames = await self._partials(partials)
        sent = time.perf_counter()
        await self._send({"type": "prompt", "voicePrompt": text, "lang": "en-US", "last": True})
        deadline = sent + timeout_s
        parts: list[str] = []
        while True:
            try:
                at, frame = await asyncio.wait_for(self._frames.get(), max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                break
            if frame is None:  # the socket closed
                break
            timing.frames += 1
            if frame.get("type") == "text":
                token = str(frame.get("token", ""))
                if timing.first_text_s is None and token:
                    timing.first_text_s = at - sent
                    timing.first_frame = token
                timing.text_frames += 1
                parts.append(token)
                if frame.get("last") is True:
                    timing.last_s = at - sent
                    break
            else:
                timing.other.append(frame)
                if frame.get("type") == "end":
                    break
        timing.text = "".join(parts)
        return timing

    async def _partials(self, partials: Partials) -> int:
        """Send the partial prompts; the frames that arrived before the final prompt (must be 0)."""
        for i, words in enumerate(partials.texts):
            if i:
                await asyncio.sleep(partials.interval_s)
            await self._send({"type": "prompt", "voicePrompt": words, "lang": "en-US", "last": False})
        await asyncio.sleep(partials.final_after_s)
        return self._frames.qsize()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.close(1000, "Closing websocket session")
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 5)

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise RuntimeError("the socket is not open")
        await self._ws.send(json.dumps(message, separators=(",", ":")))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                at = time.perf_counter()
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = {"unparsable": str(raw)[:200]}
                self._frames.put_nowait((at, frame if isinstance(frame, dict) else {"unexpected": frame}))
        except ConnectionClosed:
            pass
        self._frames.put_nowait((time.perf_counter(), None))
