"""How a turn can go: the steps of speaking, the outcomes of a turn, and in one table what each
outcome says to the caller and which metric counts it.

A *step* is what one attempt to speak (or one model round) came to; the turn engine turns the
first step that is not ``OK`` into the turn's *outcome* through ``STOPS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from voice_agent import metric_names as metric
from voice_agent.core.budget import Budget
from voice_agent.core.guard import OutputGuard
from voice_agent.core.model import FIRST_AGENT_PART, TurnKey, TurnRecord, TurnTicket
from voice_agent.core.phrases import PhraseCoalescer
from voice_agent.core.speech import SpokenSoFar


class Step(StrEnum):
    OK = "ok"
    FINISHED = "finished"  # the model's round ended (text and perhaps tool calls)
    STALE = "stale"  # the claim failed: an interrupt or a newer prompt took the generation
    GONE = "gone"  # the socket is gone
    SEND_ERROR = "send_error"  # a frame could not be delivered
    REFUSED = "refused"  # the output guard stopped a system-prompt leak
    LIMIT = "limit"  # the reply reached its length bound: ends after what was said
    LLM_ERROR = "llm_error"  # the model failed or timed out
    BUDGET = "budget"  # the turn ran out of time


class TurnStatus(StrEnum):
    COMPLETED = "completed"  # reply spoken to the end (``last`` sent)
    INTERRUPTED = "interrupted"  # an interrupt or a newer prompt took over; nothing more was sent
    ENDED = "ended"  # a tool or the human key ended the session (transfer or goodbye)
    GONE = "gone"  # the socket is gone (caller hung up or reconnected)
    LLM_ERROR = "llm_error"  # the model failed or timed out: apology spoken
    STORE_ERROR = "store_error"  # DynamoDB failed: apology spoken
    BUDGET = "budget"  # the turn ran out of time: cut short with a spoken line
    REFUSED = "refused"  # the output guard stopped a system-prompt leak: refusal spoken
    SEND_ERROR = "send_error"  # frames could not be delivered
    UNKNOWN_CONNECTION = "unknown_connection"  # no setup seen for this connection (or it is not open)
    REPLAYED = "replayed"  # Twilio replayed a message the call's previous socket already took
    SPECULATED = "speculated"  # a speculation on the same words answers it (``core/speculation.py``)


@dataclass(frozen=True, slots=True)
class Stop:
    """What a turn that stops on a step becomes."""

    status: TurnStatus
    closing_line: str | None = None  # the ``Lines`` field spoken (with ``last``), if any
    closes_reply: bool = False  # send ``last`` (empty) after what was said


STOPS: Final[Mapping[Step, Stop]] = {
    Step.STALE: Stop(TurnStatus.INTERRUPTED),
    Step.GONE: Stop(TurnStatus.GONE),
    Step.SEND_ERROR: Stop(TurnStatus.SEND_ERROR),
    Step.LIMIT: Stop(TurnStatus.COMPLETED, closes_reply=True),
    Step.LLM_ERROR: Stop(TurnStatus.LLM_ERROR, closing_line="apology"),
    Step.BUDGET: Stop(TurnStatus.BUDGET, closing_line="cut_short"),
    Step.REFUSED: Stop(TurnStatus.REFUSED, closing_line="refusal"),
}

# The metric each outcome adds to, beside the per-turn ones every turn emits.
STATUS_METRICS: Final[Mapping[TurnStatus, str]] = {
    TurnStatus.LLM_ERROR: metric.LLM_ERRORS,
    TurnStatus.STORE_ERROR: metric.STORE_ERRORS,
    TurnStatus.BUDGET: metric.TURNS_CUT_SHORT,
}


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    status: TurnStatus
    call_sid: str | None = None
    generation: int | None = None
    posts: int = 0
    time_to_first_phrase_s: float | None = None
    duration_s: float = 0.0
    tool_calls: int = 0
    detail: str | None = None


@dataclass(slots=True)
class Turn:
    """One turn's state while it runs: its ticket and deadline, what it has sent, and its counters."""

    ticket: TurnTicket
    started: float
    budget: Budget
    guard: OutputGuard
    coalescer: PhraseCoalescer
    next_part: int = FIRST_AGENT_PART
    posts: int = 0
    first_post_at: float | None = None
    spoken: SpokenSoFar = field(default_factory=SpokenSoFar)
    # What the round that called the tools said (a tool that ends the call then adds no line).
    tool_round_text: str = ""
    # The next round starts afresh ("It shipped."): it needs a space after the last round's text.
    needs_space: bool = False
    tool_calls: int = 0
    waited_for_setup: bool = False  # the connection was bound only after this turn arrived
    reply_lang: str | None = None  # every text frame's ``lang`` (a session speaking "multi")
    reply_stored: bool = False  # the final assistant message is stored (before its ``last``)
    written: list[TurnRecord] = field(default_factory=list)  # every message this turn stored
    read: tuple[TurnRecord, ...] = ()  # the stored history the turn answered from
    # Called once the reply is stored, before the claim of its closing frame (the engine keeps the
    # history there: a next prompt can only follow ``last``).
    on_reply_stored: Callable[[], None] | None = None

    def take_key(self) -> TurnKey:
        key = TurnKey(self.ticket.conn_seq, self.ticket.generation, self.next_part)
        self.next_part += 1
        return key

    def spoken_this_round(self) -> str:
        return self.spoken.this_round
