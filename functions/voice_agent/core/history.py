"""Turn stored turn items into the messages the language model sees.

Rules (each one a test in ``tests/unit/test_history.py``):

- Items are grouped per turn (connection sequence, generation) and the turns are put in the order
  they happened (when their first item was stored), so two sockets of one call interleave as the
  caller lived them; within a turn, items keep their part order.
- A turn with an interruption marker shows what the caller **heard**: the agent's spoken text of
  that turn is replaced by the marker's ``heard`` text (dropped if empty). Completed tool calls
  of that turn stay: the tool did run.
- A tool call without its result, and a result without its call, are dropped: a request with a
  dangling tool call is refused by the model API and means nothing to the agent.
- History never starts in the middle of a turn (a bounded query may cut one): leading items up to
  the first caller or greeting message are dropped.
- Caller messages in a row (a turn superseded before it spoke, then the next) become one message:
  the caller said both, and some model APIs refuse two user messages in a row.
- Text that cannot be sent (a lone surrogate stored before the protocol cleaned it) is repaired,
  and the repair logged without the text: one bad item never breaks every later turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby

from voice_agent.core.model import INTERRUPTION_PART, ChatMessage, OnAir, TurnKey, TurnRecord, TurnTicket
from voice_agent.log import logger
from voice_agent.protocol.text import clean_text, needs_cleaning


def assemble_history(records: Iterable[TurnRecord]) -> list[ChatMessage]:
    messages = [line.message for line in heard_lines(records)]
    return merge_caller_messages(_repaired(_drop_leading_fragments(messages)))


@dataclass(frozen=True, slots=True)
class HeardLine:
    """One message as the caller lived it, with where it came from: what the model sees and what
    a call's transcript shows come from this one interpretation of the stored items."""

    message: ChatMessage
    turn: tuple[int, int]  # (connection sequence, generation)
    at_ms: int | None  # when the item behind it was stored
    shown: str | None = None  # what a transcript shows instead of the text (keys: their count)
    first_phrase_ms: int | None = None  # the agent's messages: the caller's wait for the turn's first phrase


def heard_lines(records: Iterable[TurnRecord]) -> list[HeardLine]:
    """Every message of the call in the order it happened, each turn as the caller heard it (the
    rules above), before any bounding, merging or repair."""
    lines: list[HeardLine] = []
    for group in _turns_in_order(records):
        lines.extend(_turn_lines(group))
    return lines


def conversation(
    ticket: TurnTicket, history: Sequence[TurnRecord], text: str, carried: Sequence[str] = ()
) -> list[ChatMessage]:
    """The stored history as the caller lived it, this turn's words last. Two things the store may
    not hold yet come from the ticket: what the reply this turn supersedes had sent, and the
    caller's earlier messages no reply answered (a prompt superseded a moment after it arrived).
    ``carried``: messages the call's previous socket left unanswered (after an application
    reconnect), added unless the history already holds them."""
    records = with_reply_on_air(history, ticket.conn_seq, ticket.on_air)
    earlier = unanswered_missing(history, ticket.conn_seq, ticket.on_air.generation, ticket.unanswered[:-1])
    stored = {r.text.strip() for r in history if r.role == "user"}
    missing = [t for t in carried if t.strip() and t.strip() not in stored]
    said = [ChatMessage(role="user", content=t) for t in (*missing, *earlier, text)]
    return merge_caller_messages([*assemble_history(records), *said])


def with_reply_on_air(records: Sequence[TurnRecord], conn_seq: int, on_air: OnAir) -> list[TurnRecord]:
    """``records`` plus what the reply on the air had sent when this turn took over, as a marker of
    what the caller heard, unless that turn has one already (Twilio's ``interrupt`` is more exact).
    The superseded reply stores its own text only once it notices; this turn must not wait for it."""
    if on_air.done or on_air.generation <= 0 or not on_air.text.strip():
        return list(records)
    key = TurnKey(conn_seq, on_air.generation, INTERRUPTION_PART)
    if any(r.key == key for r in records):
        return list(records)
    return [*records, TurnRecord(key=key, role="interruption", heard=on_air.text)]


def unanswered_missing(
    records: Sequence[TurnRecord], conn_seq: int, after_generation: int, earlier: Sequence[str]
) -> list[str]:
    """Of the caller's ``earlier`` unanswered messages (in order), those whose items ``records``
    does not hold yet: the stored caller messages of this connection newer than ``after_generation``
    are matched to them in order."""
    stored = [
        r.text
        for r in sorted(records, key=lambda r: r.key)
        if r.role == "user" and r.key.conn_seq == conn_seq and r.key.generation > after_generation
    ]
    missing: list[str] = []
    position = 0
    for text in earlier:
        if position < len(stored) and stored[position] == text:
            position += 1
        elif text.strip():
            missing.append(text)
    return missing


def merge_caller_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for message in messages:
        if message.role == "user" and out and out[-1].role == "user":
            out[-1] = ChatMessage(role="user", content=f"{out[-1].content.rstrip()} {message.content.lstrip()}")
        else:
            out.append(message)
    return out


def _turns_in_order(records: Iterable[TurnRecord]) -> list[list[TurnRecord]]:
    """Turns by when they happened; a turn with no stored time keeps its place after the turn before
    it in key order (older items, or a marker made in memory)."""
    groups = [list(g) for _, g in groupby(sorted(records, key=lambda r: r.key), key=_turn_of)]
    timed: list[tuple[float, int, list[TurnRecord]]] = []
    previous = -math.inf
    for index, group in enumerate(groups):
        times = [r.at_ms for r in group if r.at_ms is not None]
        previous = float(min(times)) if times else previous
        timed.append((previous, index, group))
    return [group for _, _, group in sorted(timed, key=lambda t: (t[0], t[1]))]


def _turn_of(record: TurnRecord) -> tuple[int, int]:
    return record.key.conn_seq, record.key.generation


def _turn_lines(items: Sequence[TurnRecord]) -> list[HeardLine]:
    marker = next((r for r in items if r.role == "interruption"), None)
    results = {r.tool_call_id for r in items if r.role == "tool" and r.tool_call_id}
    calls = {c.id for r in items if r.role == "assistant" for c in r.tool_calls}
    waited = next((r.first_phrase_ms for r in items if r.first_phrase_ms is not None), None)
    out: list[HeardLine] = []

    def line(record: TurnRecord, message: ChatMessage) -> HeardLine:
        key = (record.key.conn_seq, record.key.generation)
        return HeardLine(message, key, record.at_ms, record.shown, waited if message.role == "assistant" else None)

    for record in items:
        if record.role == "user":
            if record.text.strip():
                out.append(line(record, ChatMessage(role="user", content=record.text)))
        elif record.role == "assistant":
            kept_calls = tuple(c for c in record.tool_calls if c.id in results)
            text = "" if marker is not None else record.text
            if text.strip() or kept_calls:
                out.append(line(record, ChatMessage(role="assistant", content=text, tool_calls=kept_calls)))
        elif record.role == "tool" and record.tool_call_id in calls:
            out.append(line(record, ChatMessage(role="tool", content=record.text, tool_call_id=record.tool_call_id)))
    if marker is not None and marker.heard and marker.heard.strip():
        out.append(line(marker, ChatMessage(role="assistant", content=marker.heard)))
    return out


def _drop_leading_fragments(messages: list[ChatMessage]) -> list[ChatMessage]:
    for i, message in enumerate(messages):
        if message.role == "user" or (message.role == "assistant" and not message.tool_calls):
            return messages[i:]
    return []


def _repaired(messages: list[ChatMessage]) -> list[ChatMessage]:
    repaired = 0
    out: list[ChatMessage] = []
    for message in messages:
        if needs_cleaning(message.content):
            repaired += 1
            out.append(replace(message, content=clean_text(message.content)))
        else:
            out.append(message)
    if repaired:
        logger.warning("stored text repaired before the model request", extra={"messages": repaired})
    return out
