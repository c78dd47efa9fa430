"""How eagerly the agent answers before the caller's final prompt (``core/speculation.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Preemption:
    """Speculative turns on partial prompts. ``enabled=False`` turns them off (partials then only
    warm the model connection, as before).

    A partial is speculated on once it has at least ``min_words`` words and has held still (no
    partial with other words) for ``stable_s``, or ``stable_punctuated_s`` when it ends a sentence.
    The model's tokens are then held for the final prompt for at most ``max_wait_s``; the
    speculating invocation reads the connection item every ``poll_s`` while it waits.
    """

    enabled: bool = True
    min_words: int = 2
    stable_s: float = 0.2
    stable_punctuated_s: float = 0.1
    max_wait_s: float = 5.0
    poll_s: float = 0.02
    # A speculation gives up once less than this is left of its invocation's 29 s, so the turn it
    # may still have to run has the time an ordinary turn would.
    min_turn_budget_s: float = 15.0
    # A final prompt with no partial before it sends the model request before taking its generation,
    # on the history this environment kept (``TurnEngine._ahead``). Off by default: when another
    # environment or socket handled a frame of the call in between, the request is discarded after
    # the model has received it (a request paid for, and seen by the model, that nobody hears).
    early_request: bool = False
    # Keep each connection's history in the execution environment, checked by the generation update
    # (``core/history_cache.py``): the next turn on the call's first socket then makes no history
    # query, and the generation update is its one DynamoDB round trip before the model. A later
    # socket of the call reads the history every time (its predecessor may still be storing).
    keep_history: bool = True
