"""Plain internal data shared by the core and its ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voice_agent.core.call_context import CallContext

# Turn items are ordered by (connection sequence, generation, part). Part 0 is the caller's
# message; 1..97 the agent's messages and tool results in order; 99 marks an interruption.
USER_PART: Final = 0
FIRST_AGENT_PART: Final = 1
INTERRUPTION_PART: Final = 99
GREETING_GENERATION: Final = 0

TurnRole = Literal["user", "assistant", "tool", "interruption"]
ChatRole = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True, order=True)
class TurnKey:
    conn_seq: int
    generation: int
    part: int

    @property
    def sort_key(self) -> str:
        return f"TURN#{self.conn_seq:04d}#{self.generation:06d}#{self.part:02d}"

    @classmethod
    def parse(cls, sort_key: str) -> TurnKey:
        _, conn, gen, part = sort_key.split("#")
        return cls(int(conn), int(gen), int(part))


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One stored message of the conversation."""

    key: TurnKey
    role: TurnRole
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    # Interruption markers only: what the caller actually heard of this generation's speech.
    heard: str | None = None
    # When it was stored (epoch milliseconds); turns are put in the order they happened.
    at_ms: int | None = None
    # The agent's messages: how long the caller waited for the turn's first phrase (milliseconds),
    # for the call record.
    first_phrase_ms: int | None = None
    # What a transcript shows instead of ``text`` (keys keyed in: their count, not the digits);
    # the model always sees ``text``.
    shown: str | None = None
    # Caller messages: the language Twilio's speech recognition heard it in (``prompt.lang``).
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message as the language model sees it."""

    role: ChatRole
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: Sequence[ChatMessage]
    tools: Sequence[ToolSpec] = ()
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens a model billed for one request, as its provider reported them."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class StreamFinished:
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage | None = None  # when the provider reports it (Bedrock always does)


StreamEvent = TextDelta | StreamFinished


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The model request or its stream failed (whatever the adapter raised: it becomes an apology)."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class CallSession:
    """The call a connection belongs to, as bound by ``setup``."""

    call_sid: str
    conn_seq: int
    resumed: bool
    language: str | None = None
    # A second socket of the same <Connect> (Twilio's application reconnect): Twilio does not speak
    # the welcome greeting again on it, and may replay what it buffered while the socket was down.
    app_reconnect: bool = False
    owed: bool = False  # the previous socket left the caller unanswered: the relay answers on this one
    # The socket takes turns only once the relay has stored its greeting and opened it
    # (``open_connection``): it takes over from another socket of the call.
    opening: bool = False


@dataclass(frozen=True, slots=True)
class OnAir:
    """The generation that last claimed the connection's speech, and everything it had sent then."""

    generation: int = GREETING_GENERATION
    text: str = ""
    done: bool = False  # its closing frame was claimed: the reply is stored in full


@dataclass(frozen=True, slots=True)
class SpecSlot:
    """The speculation registered on a connection (``core/speculation.py``): who holds it, the
    fingerprint of the words it answers, and the generation it was opened at."""

    spec_id: str
    fingerprint: str
    generation: int


@dataclass(frozen=True, slots=True)
class TurnTicket:
    """A generation number taken atomically for one turn on one connection, with what that same
    request read: the reply on the air, and the caller's messages no reply has answered yet
    (oldest first, this turn's own last). Another turn's items may not be stored yet; these are."""

    connection_id: str
    call_sid: str
    conn_seq: int
    generation: int
    language: str | None = None
    direction: str = ""
    on_air: OnAir = field(default_factory=OnAir)
    unanswered: tuple[str, ...] = ()
    context: CallContext | None = None  # written by setup, read by this same request (core/call_context.py)
    spec: SpecSlot | None = None  # a speculation registered on the connection, as this request read it
    # Another socket of the call bound after this one (``laterSocket``): its turns do not move this
    # connection's generation, so a history kept for this connection may miss them.
    later_socket: bool = False


@dataclass(frozen=True, slots=True)
class PendingEnd:
    """A session the agent is ending (``core/ending.py``): what ``end`` carries, whether the last
    line has had time to start (an ``agentSpeaking`` ``off`` may then end it), and whether ``end``
    has gone out."""

    handoff: str | None
    due: bool
    sent: bool


@dataclass(frozen=True, slots=True)
class InterruptOutcome:
    call_sid: str
    # The generation whose speech the caller cut off (its turn gets the marker).
    interrupted: TurnKey
    # True when the interrupt also cancelled that generation (nothing newer had started).
    cancelled: bool


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The call item, as the webhook's action handler needs it."""

    call_sid: str
    status: str
    reconnects: int
    farewell_spoken: bool = False
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    call_token: str | None = None  # issued at /voice; every <Connect> of the call repeats it
    language: str | None = None  # the language the call last switched to (None: the agent's)
    # What failed on this call so far (/action's recovery): "stt", "tts" (their backups are used from
    # then on), "config" (a refused configuration); and how many sessions Twilio refused.
    speech_fallbacks: frozenset[str] = frozenset()
    config_errors: int = 0


# -- Timers, key entry and the call record (plain values the ports exchange) -----------------

TimerKind = Literal["silence", "keys", "hangup", "watch"]


@dataclass(frozen=True, slots=True)
class Timer:
    """A one-shot check set for later (``core/silence.py``): it does something only if the
    connection's generation is still ``gen``, i.e. nothing happened since it was set."""

    kind: TimerKind
    call_sid: str
    connection_id: str = ""
    gen: int = 0
    step: int = 0  # silence: reminders said so far; keys: re-prompts said; watch: checks made
    entry: int = 0  # keys: the key entry (the generation of the turn that started it)
    deadline: int = 0  # watch: epoch seconds by which the call must end (0: no limit)
    language: str | None = None  # the call's language when it was set (which lines to say)
    agent: str | None = None  # the agent that answers the call (its timings and lines); None: the default


@dataclass(frozen=True, slots=True)
class QuietTurn:
    """A generation a timer took to say a line (nothing happened since it was set)."""

    call_sid: str
    conn_seq: int
    generation: int
    language: str | None = None


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key entry after a key: what has come so far (``#`` included if pressed)."""

    call_sid: str
    entry: int
    generation: int  # the connection's generation after this key
    count: int  # keys wanted (0: until #)
    reprompts: int
    keys: tuple[str, ...]
    language: str | None = None
    agent: str | None = None  # the agent that answers the call (None: the default one)


@dataclass(frozen=True, slots=True)
class CallWatch:
    """What the call watch needs: how the call stands and its newest socket."""

    status: str
    connection_id: str | None
    connection_status: str | None = None
    closed_at: int | None = None  # epoch seconds the newest socket closed
    language: str | None = None
    ended_at: int | None = None  # epoch seconds the call was marked over
    recorded: bool = False  # its record is made


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The call item as the call record needs it."""

    call_sid: str
    status: str
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    created_at: int | None = None
    ended_at: int | None = None
    reconnects: int = 0
    end_reason: str | None = None
    language: str | None = None
    dial_result: str | None = None
    dial_duration_s: int | None = None
    transfer_reason: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    recorded_at: int | None = None
    record_location: str | None = None


@dataclass(frozen=True, slots=True)
class RecordRequest:
    """Make the call's record (a queue message): ``outcome`` is what the trigger saw end the call,
    when it knows better than the call item (a failed session, a voicemail)."""

    call_sid: str
    outcome: str | None = None
    reason: str | None = None  # the transfer's reasonCode, when a transfer ended the session
