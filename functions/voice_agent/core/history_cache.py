"""The history a turn ends with, kept by the execution environment so the next turn on the same
connection needs no history query: the generation update is then the one DynamoDB round trip
before the model request.

The check is the connection item's ``gen``, which the turn start returns anyway. Everything that
adds to a call's history on a socket takes a generation first (a turn, an interrupt that cancels
a reply, a timer's line, a key entry, a hand-over to a new socket), so if the generation a turn
takes is the one after the turn that filled the cache, and that turn's reply is the one on the
air and was sent in full, nothing was written since that this environment did not write itself.
Anything else (another environment's turn, an interrupt, a lost write) fails the check and the
turn reads the history as before. A cache entry is only a shortcut, never a source of truth.

A second live socket of the same call writes turns without moving this socket's generation: a
resume through ``/action`` (or Twilio's application reconnect) while the old socket still
finishes a turn, whose cut reply is stored as heard once it notices. So the cache serves only the
call's first socket (``connSeq`` 1), which no other socket of the call precedes, and only until a
later socket binds (the binding marks it, ``laterSocket``: the turn engine then reads the history
every time); ``Preemption.keep_history`` turns the cache off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from voice_agent.core.model import OnAir, TurnRecord, TurnTicket

_SIZE = 256


@dataclass(frozen=True, slots=True)
class _Entry:
    call_sid: str
    generation: int  # the turn that left this history; the next turn on the socket takes generation + 1
    records: tuple[TurnRecord, ...]
    ticket: TurnTicket  # that turn's


@dataclass(frozen=True, slots=True)
class Guess:
    """What the next turn on a connection will most likely find: its ticket (the generation after
    the last one here, that reply on the air in full, only its own words unanswered) and history."""

    ticket: TurnTicket
    history: list[TurnRecord]


class HistoryCache:
    """connectionId -> the history as the last completed turn here left it (bounded, thread-safe)."""

    def __init__(self, size: int = _SIZE) -> None:
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def knows(self, connection_id: str) -> bool:
        with self._lock:
            return connection_id in self._items

    def history(self, connection_id: str, call_sid: str, after: int, on_air: OnAir) -> list[TurnRecord] | None:
        """The history, if nothing can have changed it since generation ``after`` finished here:
        the turn asking took ``after + 1`` (or a speculation saw ``gen = after``), and the reply on
        the air is generation ``after``'s, sent in full."""
        with self._lock:
            entry = self._items.get(connection_id)
        if entry is None or entry.call_sid != call_sid or entry.generation != after or entry.ticket.conn_seq != 1:
            return None
        if on_air.generation != after or not on_air.done:
            return None
        return list(entry.records)

    def guess(self, connection_id: str, call_sid: str, text: str) -> Guess | None:
        """The next turn's likely ticket and history, before its generation is taken (the model
        request can leave first; the turn checks the guess against the real ticket)."""
        with self._lock:
            entry = self._items.get(connection_id)
        if entry is None or entry.call_sid != call_sid or entry.ticket.conn_seq != 1:
            return None
        on_air = OnAir(generation=entry.generation, text="", done=True)
        ticket = replace(entry.ticket, generation=entry.generation + 1, on_air=on_air, unanswered=(text,), spec=None)
        return Guess(ticket, list(entry.records))

    def keep(
        self, ticket: TurnTicket, history: Sequence[TurnRecord], written: Sequence[TurnRecord], max_items: int
    ) -> None:
        """After a turn completed: what it read plus what it wrote (a rewrite of a key replaces it),
        the newest ``max_items`` in key order, as the history query would return them."""
        merged = {r.key: r for r in history}
        merged.update((r.key, r) for r in written)
        records = tuple(sorted(merged.values(), key=lambda r: r.key.sort_key)[-max_items:])
        connection_id = ticket.connection_id
        with self._lock:
            current = self._items.get(connection_id)
            if current is not None and current.generation > ticket.generation:
                return  # a newer turn here already left its history
            self._items[connection_id] = _Entry(ticket.call_sid, ticket.generation, records, ticket)
            self._items.move_to_end(connection_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, connection_id: str | None = None) -> None:
        with self._lock:
            if connection_id is None:
                self._items.clear()
            else:
                self._items.pop(connection_id, None)
