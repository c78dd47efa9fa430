"""A call typed in a terminal: each line is what the caller says.

Typing while the agent is still speaking barges in (an ``interrupt`` with what was heard so far,
then the prompt), as speaking over the agent does on a real call. Commands:

    /key 1        press a key (dtmf); also /dtmf 1
    /interrupt    barge in without saying anything
    /partial ...  say it with partial prompts first
    /drop         drop the line (the app gets 1006, /action gets failed 64105, Twilio reconnects)
    /blip         drop the socket; Twilio's application reconnect reopens it (no /action)
    /raw {...}    send a raw frame (malformed JSON, an unknown type...)
    /hangup       hang up (also Ctrl-D); /help shows this
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable

from local.caller.phone import RelaySession

HELP = __doc__.split("Commands:", 1)[1].rstrip() if __doc__ else ""


class LineReader:
    """Lines from stdin on a helper thread, handed to the event loop (``None`` at end of input)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, readline: Callable[[], str] = sys.stdin.readline) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = loop
        self._readline = readline
        threading.Thread(target=self._run, name="stdin", daemon=True).start()

    def _run(self) -> None:
        while True:
            line = self._readline()
            if not line:
                self._loop.call_soon_threadsafe(self.lines.put_nowait, None)
                return
            self._loop.call_soon_threadsafe(self.lines.put_nowait, line.rstrip("\n"))


class InteractiveDriver:
    def __init__(self, reader: LineReader, out: Callable[[str], None] = print) -> None:
        self._reader = reader
        self._out = out
        self._helped = False
        self.hung_up = False

    async def on_session(self, session: RelaySession) -> None:
        if not self._helped:
            self._out("  (type what the caller says; /help for keys, barge-in, drop, hang up)")
            self._helped = True
        while not session.ended.is_set():
            line = await self._next_line(session)
            if line is None:
                if not session.ended.is_set():
                    self.hung_up = True
                return
            await self._handle(session, line.strip())

    async def _next_line(self, session: RelaySession) -> str | None:
        get = asyncio.ensure_future(self._reader.lines.get())
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if get.done():
            return get.result()
        get.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await get
        return ""  # the session ended while waiting: the caller's line goes to the next session

    async def _handle(self, session: RelaySession, line: str) -> None:
        if not line or session.ended.is_set():
            return
        command, _, rest = line.partition(" ")
        if not command.startswith("/"):
            await self._say(session, line, partial=False)
            return
        action = {
            "/help": self._help,
            "/key": self._key,
            "/dtmf": self._key,
            "/interrupt": self._interrupt,
            "/partial": self._partial,
            "/drop": self._drop,
            "/blip": self._blip,
            "/raw": self._raw,
            "/hangup": self._hangup,
            "/quit": self._hangup,
            "/exit": self._hangup,
        }.get(command.lower())
        if action is None:
            self._out(f"  unknown command {command}; /help lists them")
            return
        await action(session, rest.strip())

    async def _help(self, session: RelaySession, rest: str) -> None:
        self._out(HELP)

    async def _key(self, session: RelaySession, digit: str) -> None:
        if len(digit) != 1 or digit not in "0123456789*#":
            self._out("  usage: /key 0-9, * or #")
            return
        await session.dtmf(digit)

    async def _interrupt(self, session: RelaySession, rest: str) -> None:
        if await session.interrupt() is None:
            self._out("  (nothing to interrupt: the agent is not speaking)")

    async def _partial(self, session: RelaySession, text: str) -> None:
        await self._say(session, text, partial=True)

    async def _drop(self, session: RelaySession, rest: str) -> None:
        await session.drop()

    async def _blip(self, session: RelaySession, rest: str) -> None:
        await session.drop(app_reachable=True)

    async def _raw(self, session: RelaySession, frame: str) -> None:
        await session.send_raw(frame)

    async def _hangup(self, session: RelaySession, rest: str) -> None:
        self.hung_up = True
        await session.hangup()

    @staticmethod
    async def _say(session: RelaySession, text: str, *, partial: bool) -> None:
        if not text:
            return
        if session.busy:
            await session.interrupt()  # speaking over the agent is a barge-in (if it is speaking)
        await session.prompt(text, partial=partial)
