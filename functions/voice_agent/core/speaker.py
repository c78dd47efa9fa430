"""Speaking one turn: every frame claims the generation before it is posted (claim-before-post),
records what the caller has been sent, and stores the reply as it was heard.

The turn engine decides what to say; the ``Speaker`` says it, for one ``Turn`` at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from voice_agent.core.budget import Clock
from voice_agent.core.model import TurnRecord
from voice_agent.core.ports import Sender, TurnStore
from voice_agent.core.turn_states import Step, Turn
from voice_agent.errors import ConnectionGoneError, SendError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.outbound import OutboundMessage, Text


class Speaker:
    def __init__(self, *, store: TurnStore, sender: Sender, clock: Clock) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock

    def speak(self, turn: Turn, phrase: str, *, last: bool = False, store_reply: bool = False) -> Step:
        verdict = turn.guard.check(phrase)
        if verdict.leak:
            logger.warning("output guard stopped a reply that reproduced the system prompt")
            return Step.REFUSED
        text = verdict.text
        if turn.needs_space and text.strip():
            turn.needs_space = False
            if not text[0].isspace():
                text = " " + text
        if text.strip() or last:
            step = self.post(turn, Text(text, last=last), store_reply=store_reply)
            if step != Step.OK:
                return step
        return Step.LIMIT if verdict.stop else Step.OK

    def post(self, turn: Turn, message: OutboundMessage, *, claim: bool = True, store_reply: bool = False) -> Step:
        """Claim the generation, then send one message. ``store_reply`` (the final ``last`` frame):
        store the reply, this message's text included, before the claim, so the next prompt's
        history holds it once ``last`` is out; if the claim or the send fails, the stored reply is
        rewritten to what the caller heard."""
        message = _tagged(turn, message)
        stored = self._store_reply(turn, message) if store_reply and isinstance(message, Text) else None
        step = Step.OK
        after = turn.spoken.whole + (message.token if isinstance(message, Text) else "")
        if claim and not claimed(lambda: self._store.claim_phrase(turn.ticket, after, final=store_reply)):
            step = Step.STALE
        else:
            try:
                self._sender.send(turn.ticket.connection_id, message)
            except ConnectionGoneError:
                self.mark_gone(turn.ticket.connection_id)
                step = Step.GONE
            except SendError:
                step = Step.SEND_ERROR
        if step != Step.OK:
            if stored is not None and stored.text.strip():
                heard = turn.spoken_this_round()
                waited = stored.first_phrase_ms if turn.first_post_at is not None else None
                self.persist(turn, [TurnRecord(key=stored.key, role="assistant", text=heard, first_phrase_ms=waited)])
            return step
        turn.posts += 1
        if turn.first_post_at is None:
            turn.first_post_at = self._clock.monotonic()
        if isinstance(message, Text):
            turn.spoken.add(message.token)
        return Step.OK

    def _store_reply(self, turn: Turn, message: Text) -> TurnRecord:
        stored = TurnRecord(
            key=turn.take_key(),
            role="assistant",
            text=turn.spoken_this_round() + message.token,
            first_phrase_ms=self.waited_ms(turn),
        )
        if stored.text.strip():
            self.persist(turn, [stored])
        turn.reply_stored = True
        if turn.on_reply_stored is not None:
            turn.on_reply_stored()
        return stored

    def persist_reply(self, turn: Turn) -> None:
        if turn.reply_stored:
            return
        said = turn.spoken_this_round()
        if said.strip():
            record = TurnRecord(key=turn.take_key(), role="assistant", text=said, first_phrase_ms=self.waited_ms(turn))
            self.persist(turn, [record])

    def waited_ms(self, turn: Turn) -> int:
        """How long the caller waited for this turn's first phrase (for the call record); before
        the first post, about now: the frame being stored goes out next."""
        first = turn.first_post_at if turn.first_post_at is not None else self._clock.monotonic()
        return max(0, round((first - turn.started) * 1000))

    def persist(self, turn: Turn, records: Sequence[TurnRecord]) -> None:
        if records:
            turn.written.extend(records)
            quietly(lambda: self._store.put_turns(turn.ticket.call_sid, records))

    def mark_gone(self, connection_id: str) -> None:
        quietly(lambda: self._store.close_connection(connection_id, gone=True))

    def send_quietly(self, connection_id: str, message: OutboundMessage) -> None:
        try:
            self._sender.send(connection_id, message)
        except (ConnectionGoneError, SendError):
            logger.warning("could not deliver the apology")


def _tagged(turn: Turn, message: OutboundMessage) -> OutboundMessage:
    """Text in a session speaking "multi" carries ``lang`` (ElevenLabs then picks the language)."""
    if isinstance(message, Text) and message.lang is None and turn.reply_lang is not None:
        return dataclasses.replace(message, lang=turn.reply_lang)
    return message


def quietly(action: Callable[[], object]) -> None:
    """Bookkeeping that must not cost the caller the turn: log and carry on."""
    try:
        action()
    except StoreUnavailableError:
        logger.error("session store write lost")


def claimed(claim: Callable[[], bool]) -> bool:
    try:
        return claim()
    except StoreUnavailableError:
        logger.warning("generation check unavailable; speaking anyway")
        return True
