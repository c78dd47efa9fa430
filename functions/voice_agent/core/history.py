"""Turn stored turn items into the messages the language model sees.

Rules (each one a test in ``tests/unit/test_history.py``):

- Items are grouped per turn (connection sequence, generation) and kept in order.
- A turn with an interruption marker shows what the caller **heard**: the agent's spoken text of
  that turn is replaced by the marker's ``heard`` text (dropped if empty). Completed tool calls
  of that turn stay: the tool did run.
- A tool call without its result, and a result without its call, are dropped: a request with a
  dangling tool call is refused by the model API and means nothing to the agent.
- History never starts in the middle of a turn (a bounded query may cut one): leading items up to
  the first caller or greeting message are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby

from voice_agent.core.model import ChatMessage, TurnRecord


def assemble_history(records: Iterable[TurnRecord]) -> list[ChatMessage]:
    ordered = sorted(records, key=lambda r: r.key)
    messages: list[ChatMessage] = []
    for _, group in groupby(ordered, key=lambda r: (r.key.conn_seq, r.key.generation)):
        messages.extend(_turn_messages(list(group)))
    return _drop_leading_fragments(messages)


def _turn_messages(items: Sequence[TurnRecord]) -> list[ChatMessage]:
    marker = next((r for r in items if r.role == "interruption"), None)
    results = {r.tool_call_id for r in items if r.role == "tool" and r.tool_call_id}
    calls = {c.id for r in items if r.role == "assistant" for c in r.tool_calls}
    out: list[ChatMessage] = []
    for record in items:
        if record.role == "user":
            if record.text:
                out.append(ChatMessage(role="user", content=record.text))
        elif record.role == "assistant":
            kept_calls = tuple(c for c in record.tool_calls if c.id in results)
            text = "" if marker is not None else record.text
            if text or kept_calls:
                out.append(ChatMessage(role="assistant", content=text, tool_calls=kept_calls))
        elif record.role == "tool" and record.tool_call_id in calls:
            out.append(ChatMessage(role="tool", content=record.text, tool_call_id=record.tool_call_id))
    if marker is not None and marker.heard:
        out.append(ChatMessage(role="assistant", content=marker.heard))
    return out


def _drop_leading_fragments(messages: list[ChatMessage]) -> list[ChatMessage]:
    for i, message in enumerate(messages):
        if message.role == "user" or (message.role == "assistant" and not message.tool_calls):
            return messages[i:]
    return []


def spoken_text(records: Iterable[TurnRecord]) -> str:
    """Everything the agent said in these items (for guards and tests)."""
    return "".join(r.text for r in records if r.role == "assistant")
