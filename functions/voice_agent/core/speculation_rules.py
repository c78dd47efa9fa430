"""When a speculation may start, and when the final prompt confirms it: pure rules, shared by the
speculating invocation (``core/speculation.py``) and the final prompt's (``core/turn_engine.py``).

Both sides decide from the same atomic state of the connection item, so exactly one of them
answers the caller:

- the final prompt's turn start (``ADD gen 1``, its words appended to ``pending``) returns the
  speculation registered on the connection; it hands the turn over when that speculation was
  opened at the generation just before its own, on the same words once normalised, and its words
  are the only unanswered ones;
- the speculating invocation, polling the item, sees the same thing: the generation after the one
  it opened at, its own ``specId``, and ``pending`` holding exactly words with its fingerprint.

A registered speculation whose generation has been passed is frozen: partials neither replace nor
cancel it (``SpeculationStore.open_speculation`` conditions), so what the final prompt saw stays
there until its speculator removes it.
"""

from __future__ import annotations

import re
from enum import StrEnum

from voice_agent.core.model import TurnTicket
from voice_agent.core.replay import fingerprint

_ENDS_A_SENTENCE = re.compile(r"[.?!…]['\")\]]*\s*$")


class SpecState(StrEnum):
    """A speculation's life, from the partial that opened it to how it ended."""

    OPENED = "opened"  # registered on the connection; waiting for the words to hold still
    THINKING = "thinking"  # the model request is out; its tokens are held, nothing is sent
    CONFIRMED = "confirmed"  # the final prompt said the same words: the held reply is spoken
    # Confirmed, but another socket of the call stored turns after the history was read (the reply a
    # drop cut, stored as heard): the held reply is dropped and the turn asks the model again.
    REREAD = "reread"
    SUPERSEDED = "superseded"  # the final said other words (or a newer turn started): it runs its own turn
    CANCELLED = "cancelled"  # a newer partial changed the words
    FAILED = "failed"  # the model failed before the final: the final runs an ordinary turn
    EXPIRED = "expired"  # no final prompt within the wait: given up, nothing was said
    REFUSED = "refused"  # not opened: a turn is running, the words are already speculated on, ...


def words(text: str) -> int:
    return len(text.split())


def ends_a_sentence(text: str) -> bool:
    return bool(_ENDS_A_SENTENCE.search(text))


def answered_by_speculation(ticket: TurnTicket) -> bool:
    """The final prompt's turn start returned ``ticket``: a speculation answers it. (Its words are
    read back from ``pending``, as the speculator reads them, so both compare the same text.)"""
    spec = ticket.spec
    return (
        spec is not None
        and spec.generation == ticket.generation - 1
        and len(ticket.unanswered) == 1
        and spec.fingerprint == fingerprint(ticket.unanswered[0])
    )


def confirms(ticket: TurnTicket, spec_id: str, opened_at: int, fp: str) -> bool:
    """The connection item as the speculator polled it: the final prompt handed it the turn."""
    spec = ticket.spec
    return (
        spec is not None
        and spec.spec_id == spec_id
        and ticket.generation == opened_at + 1
        and len(ticket.unanswered) == 1
        and fingerprint(ticket.unanswered[0]) == fp
    )
