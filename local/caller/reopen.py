"""Twilio's application reconnect (GA 2026-10-28), as the simulated caller plays it: when the
socket drops while the session goes on, and the TwiML says ``applicationReconnect="true"``, Twilio
opens a new socket to the same URL by itself, holding up to 500 events meanwhile and replaying them
once it is back; ``/action`` hears of it only if that fails.

What the new socket gets first is not documented readably (docs/protocol.md), so every plausible
answer is playable (``Call.reconnect_setup``): a ``setup`` of the same session, of a new session,
or none; and delivery may be at-least-once (``Call.replay_last``: frames sent just before the drop
are sent again).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from websockets.asyncio.client import ClientConnection

from local.caller.records import UpgradeRefusedError, new_sid

REPLAY_BUFFER: Final = 500  # events Twilio holds during a drop and replays after it reconnects
ATTEMPTS: Final = 3
ReconnectSetup = Literal["same-session", "new-session", "none"]


class Reopener:
    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[ClientConnection]],
        send_setup: Callable[[ClientConnection, str], Awaitable[None]],
        note: Callable[[str], None],
        session_id: str,
        setup: ReconnectSetup,
        replay_last: int,
    ) -> None:
        self._connect = connect
        self._send_setup = send_setup
        self._note = note
        self._session_id = session_id
        self._setup = setup
        self._replay_last = replay_last
        self.holding = False  # the socket is down: frames wait here
        self.reopened = 0  # sockets reopened
        self.replayed = 0  # frames sent again on a reopened socket
        self.done = asyncio.Event()  # set each time a socket has been reopened
        self._held: deque[str] = deque(maxlen=REPLAY_BUFFER)
        self._last_sent: deque[str] = deque(maxlen=4)

    def hold(self, frame: str) -> None:
        self._held.append(frame)

    def sent(self, frame: str) -> None:
        self._last_sent.append(frame)

    async def reopen(self) -> ClientConnection | None:
        """A new socket to the same URL (``None`` if every attempt failed): the setup the mode
        says, then the frames sent just before the drop again, then the ones held since."""
        self.holding = True
        ws: ClientConnection | None = None
        for attempt in range(ATTEMPTS):
            try:
                ws = await self._connect()
                break
            except (UpgradeRefusedError, OSError) as exc:
                self._note(f"application reconnect attempt {attempt + 1} failed: {exc}")
                await asyncio.sleep(0.2)
        if ws is None:
            self.holding = False
            return None
        self.reopened += 1
        self._note(f"socket reopened by Twilio ({self._setup} setup)")
        if self._setup != "none":
            await self._send_setup(ws, self._session_id if self._setup == "same-session" else new_sid("VX"))
        again = list(self._last_sent)[len(self._last_sent) - min(self._replay_last, len(self._last_sent)) :]
        frames = [*again, *self._held][:REPLAY_BUFFER]
        for frame in frames:
            await ws.send(frame)
        self.replayed += len(frames)
        self._held.clear()
        self.holding = False
        self.done.set()
        return ws
