"""Interfaces the core depends on. Adapters implement them; tests pass fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from voice_agent.core.model import (
    CallFacts,
    CallRecord,
    CallSession,
    CallWatch,
    ChatRequest,
    InterruptOutcome,
    KeyState,
    PendingEnd,
    QuietTurn,
    RecordRequest,
    StreamEvent,
    StreamFailed,
    Timer,
    TurnRecord,
    TurnTicket,
)
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.outbound import OutboundMessage


class Sender(Protocol):
    def send(self, connection_id: str, message: OutboundMessage) -> None:
        """Deliver one message (split into frames if needed), in order.

        Raises ``ConnectionGoneError`` when the socket is gone (never retried) and ``SendError``
        for anything else that could not be delivered.
        """


class ChatStream(Protocol):
    def __iter__(self) -> Iterator[StreamEvent]: ...

    def close(self) -> None:
        """Cancel the request: stop paying for tokens no one will hear."""


class ChatModel(Protocol):
    def stream(self, request: ChatRequest) -> ChatStream:
        """Start a streamed completion. Raises ``LLMError``; iteration may raise it too."""

    def warm(self) -> None:
        """Load the client and open a connection ahead of the first turn (best effort)."""


class ModelPump(Protocol):
    """One model request read beside the turn (``adapters/threads.py``), so the turn can keep its
    deadlines and flush phrases on time whatever the transport does."""

    def wait_opened(self, timeout_s: float) -> None:
        """Until the request is out (or failed), at most ``timeout_s``."""

    def next_event(self, timeout_s: float) -> StreamEvent | StreamFailed | None:
        """The next event, or ``None`` if none came within ``timeout_s``."""

    def cancel(self) -> None:
        """Close the request (stop paying for tokens no one will hear) and let the reader go."""


StartPump = Callable[[ChatModel, ChatRequest], ModelPump]


class TurnStore(Protocol):
    """What a turn needs of the session store (``turn_engine``)."""

    def start_turn(self, connection_id: str, text: str = "") -> TurnTicket | None:
        """Take the next generation for this connection, noting the caller's ``text`` as unanswered;
        ``None`` if the connection is unknown or not open (no setup yet, ending, closed). Raises
        ``ReplayedMessageError`` for a message the call's previous socket already took (Twilio's
        replay after an application reconnect)."""

    def adopt_connection(self, connection_id: str) -> CallSession | None:
        """Bind a socket ``$connect`` noted as Twilio's application reconnect that no setup bound
        (Twilio may send none); ``None`` if it is not one."""

    def take_owed(self, connection_id: str) -> tuple[str, ...] | None:
        """The turn the call's previous socket left unanswered, owed on this one, once: the caller's
        messages not stored yet (empty: they are). ``None``: nothing is owed."""

    def claim_phrase(self, ticket: TurnTicket, spoken: str | None = None, *, final: bool = False) -> bool:
        """True if ``ticket`` is still the current generation; records that it is speaking and what
        it will have ``spoken`` once this frame is out (``final``: the closing frame of a stored reply)."""

    def mark_ending(self, ticket: TurnTicket, handoff: str | None = None, hold_s: float = 0.0) -> bool:
        """The turn ends the session: True if it is still the newest (the connection then starts no
        new turn), False if a newer turn took over before it decided. ``handoff`` is what ``end``
        will carry; an ``agentSpeaking`` ``off`` may send it ``hold_s`` from now (``core/ending.py``)."""

    def pending_end(self, connection_id: str) -> PendingEnd | None:
        """The session end this connection is waiting to send, if any."""

    def claim_end(self, connection_id: str) -> bool:
        """True once, for whoever sends ``end`` first (the turn, or a speaker event's invocation)."""

    def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
        """The most recent turn items of the call, oldest first, in one query."""

    def put_turns(self, call_sid: str, records: Sequence[TurnRecord]) -> None:
        """Store turn items (one request for up to 25)."""

    def set_language(self, ticket: TurnTicket, language: str) -> None:
        """The call switched language: this socket's next turns and a resumed call speak it."""

    def mark_farewell(self, call_sid: str) -> None:
        """Remember that the caller has been told goodbye (the action handler then just hangs up)."""

    def close_connection(self, connection_id: str, *, gone: bool, code: int | None = None) -> str | None:
        """Mark the connection closed (``code``: the close code ``$disconnect`` reported); returns
        its call SID if known."""

    def start_key_entry(self, ticket: TurnTicket, count: int) -> bool:
        """The turn asks the caller for keys: collect them on the connection (``count`` keys, or 0:
        until ``#``). False if a newer turn took over first."""


class KeyEntryStore(Protocol):
    """Key entry across frames (``core/key_entry.py``): each key is one conditional write."""

    def add_key(self, connection_id: str, key: str, max_keys: int) -> KeyState | None:
        """Add ``key`` to the connection's key entry (and take a generation: something happened);
        ``None`` if the connection is not collecting keys."""

    def close_key_entry(self, connection_id: str, entry: int, gen: int | None = None) -> tuple[str, ...] | None:
        """End key entry ``entry`` (only if the generation is still ``gen``, when given); the keys
        it collected, or ``None`` if it was not open any more (another frame ended it)."""


class TimerStore(KeyEntryStore, Protocol):
    """What the timers need (``core/silence.py``): one conditional write decides each one."""

    def take_quiet_turn(
        self, connection_id: str, gen: int, spoken: str, *, ending: bool = False, key_entry: int | None = None
    ) -> QuietTurn | None:
        """Take generation ``gen + 1`` to say ``spoken``, if the connection is open and still at
        ``gen`` (and collecting ``key_entry``, when given); ``ending``: no turn starts after it."""

    def end_for_time_limit(self, connection_id: str, spoken: str) -> QuietTurn | None:
        """Take a generation to say ``spoken`` and end the session, whatever is on the air."""

    def claim_end(self, connection_id: str) -> bool:
        """True once per connection a timer ended: then it sends ``end``."""

    def set_end_reason(self, call_sid: str, reason: str) -> None:
        """Why the agent is ending the call (the record's outcome); the goodbye is said."""

    def watch_call(self, call_sid: str) -> CallWatch | None: ...

    def mark_cut_off(self, call_sid: str) -> bool:
        """The call ended without the end callback: True if this marked it (it was active)."""

    def put_turns(self, call_sid: str, records: Sequence[TurnRecord]) -> None: ...

    def close_connection(self, connection_id: str, *, gone: bool) -> str | None: ...


class Timers(Protocol):
    def schedule(self, timer: Timer, delay_s: float) -> None:
        """Deliver ``timer`` to the timer function in about ``delay_s`` seconds (whole seconds, at
        most 900: longer waits are chained). Raises ``QueueError``."""


class RecordQueue(Protocol):
    def request(self, request: RecordRequest, delay_s: float = 0) -> None:
        """Ask for the call's record in about ``delay_s`` seconds. Raises ``QueueError``."""


class RecordStore(Protocol):
    """What the record builder reads and marks (``core/call_record.py``)."""

    def call_facts(self, call_sid: str) -> CallFacts | None: ...

    def all_turns(self, call_sid: str) -> list[TurnRecord]:
        """Every stored turn item of the call, oldest first (bounded)."""

    def claim_record(self, call_sid: str, owner: str, lease_s: int) -> bool:
        """True if no record is made yet and no other builder holds a live claim."""

    def release_record(self, call_sid: str, owner: str) -> None: ...

    def mark_recorded(self, call_sid: str, owner: str, location: str) -> None: ...


class RecordSink(Protocol):
    def put(self, record: Mapping[str, Any]) -> tuple[dict[str, str], Mapping[str, Any]]:
        """Store the record once per call: where it is, and the stored record (an earlier
        attempt's, if one stored it first). Raises ``RecordError``."""


class RecordBus(Protocol):
    def announce(self, detail: Mapping[str, Any]) -> None:
        """Publish the record's event. Raises ``RecordError``."""


class RelayStore(Protocol):
    """What the message router needs of the session store (``relay``): binding, greetings, interrupts."""

    def bind_connection(self, connection_id: str, setup: Setup) -> CallSession:
        """Create or resume the call and point the connection at it, for the connection's lifetime.

        Raises ``ConnectionAlreadyBoundError`` if the connection already belongs to a call, and
        ``CallTokenMismatchError`` if the setup lacks the token ``/voice`` issued for the call."""

    def open_connection(self, connection_id: str) -> None:
        """Let a socket bound with ``CallSession.opening`` take turns (after its greeting is stored)."""

    def put_turns(self, call_sid: str, records: Sequence[TurnRecord]) -> None: ...

    def record_interrupt(self, connection_id: str, heard: str, duration_ms: int | None) -> InterruptOutcome | None:
        """Cancel the speaking generation if it is the newest, and mark what the caller heard."""

    def take_owed(self, connection_id: str) -> tuple[str, ...] | None: ...

    def adopt_connection(self, connection_id: str) -> CallSession | None: ...

    def latest_socket(self, call_sid: str) -> str | None:
        """The call's latest socket as ``$connect`` noted it (after Twilio's application reconnect,
        the new one)."""

    def closed_normally(self, connection_id: str) -> bool:
        """``$disconnect`` reported a normal close (a hang-up, not a drop)."""

    def pending_end(self, connection_id: str) -> PendingEnd | None: ...

    def claim_end(self, connection_id: str) -> bool: ...


class CallStore(Protocol):
    """What the webhook needs of the session store (``/voice`` and ``call_flow``)."""

    def issue_call_token(self, call_sid: str, token: str) -> str:
        """Keep ``token`` for the call (``/voice``); returns the call's token (the first one issued)."""

    def get_call(self, call_sid: str) -> CallRecord | None: ...

    def count_reconnect(self, call_sid: str, session_id: str | None = None) -> int:
        """Atomically count one more reconnect attempt for the call; returns the new count.

        Counted once per ``session_id``: asked again for the same session, returns the count
        as it stands."""

    def record_failure(self, call_sid: str, session_id: str | None = None, fallback: str | None = None) -> CallRecord:
        """``count_reconnect``, also remembering what failed (``fallback``: ``stt``, ``tts``,
        ``config``), in one request; returns the call after it (``reconnects`` is the attempt)."""

    def end_call(self, call_sid: str, status: str) -> None: ...

    # What the call record needs to know and only the webhook sees (``webhook/records.py``).
    def note_transfer(self, call_sid: str, reason_code: str) -> None: ...

    def set_dial_result(self, call_sid: str, status: str, duration_s: int | None) -> None: ...

    def mark_voicemail(self, call_sid: str, *, direction: str, from_number: str, to_number: str) -> None: ...


class ConnectionCloser(Protocol):
    """What ``$disconnect`` needs."""

    def close_connection(self, connection_id: str, *, gone: bool, code: int | None = None) -> str | None: ...


class SpeculationStore(TurnStore, Protocol):
    """What a speculative turn needs (``core/speculation.py``): one slot on the connection item."""

    def open_speculation(self, connection_id: str, spec_id: str, fp: str, hold_s: float) -> TurnTicket | None:
        """Register a speculation; the connection as it then stands, or ``None`` if refused."""

    def read_connection(self, connection_id: str) -> TurnTicket | None:
        """The connection item now (a consistent read); ``None`` if it is gone or not open."""

    def close_speculation(self, connection_id: str, spec_id: str, *, unless_past: int | None = None) -> bool:
        """Remove the slot if this speculation holds it (and, with ``unless_past``, no generation
        was taken after it)."""

    def cancel_speculation(self, connection_id: str, fp: str) -> bool:
        """Remove a slot on other words that no final prompt has taken over."""


class SessionStore(
    SpeculationStore, TurnStore, RelayStore, CallStore, ConnectionCloser, TimerStore, RecordStore, Protocol
):
    """The whole store (``adapters/dynamo_store.py``); each client depends only on its own part."""
