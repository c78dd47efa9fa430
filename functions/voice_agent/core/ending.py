"""Ending the relay session (a transfer, a goodbye) once its last words have been spoken.

Twilio may end the session as soon as ``end`` arrives, so the line before it must play out first.
With the ``speaker-events`` debug option (``agent/relay_options.py``, on by default) Twilio says
when the agent stops speaking (``info`` ``agentSpeaking`` ``off``): that event, handled by its own
invocation (``end_after_speech``), sends ``end``. The turn that decided to end waits meanwhile, and
sends ``end`` itself if no event came: after the old estimate (2.5 words a second, at most 6 s)
when the events are off, or after a longer grace when they are on but silent.

Exactly one ``end`` goes out: both sides claim it on the connection item first (``claim_end``).
An ``off`` counts only from half a second after the line was posted (``hold_s``): an ``off`` that
ended earlier speech, delivered late, cannot cut the line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from voice_agent.agent.config import AgentConfig
from voice_agent.core.budget import Clock
from voice_agent.core.ports import RelayStore, Sender, TurnStore
from voice_agent.core.speaker import Speaker, quietly
from voice_agent.core.tools import EndSession
from voice_agent.core.turn_states import Step, Turn, TurnOutcome, TurnStatus
from voice_agent.errors import ConnectionGoneError, SendError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.outbound import End

WORDS_PER_SECOND = 2.5  # a caller hears about this many words a second
MAX_ESTIMATE_WAIT_S = 6.0  # without speaker events: how long at most the last words are given
MAX_EVENT_WAIT_S = 12.0  # with them: how long at most the turn waits for the event
POLL_S = 0.25


HOLD_S = 0.5


def hold_s(line: str) -> float:
    """How long after the line's post an ``off`` can be its end, not the end of speech before it:
    speech queued behind the line plays on without a break, so only an ``off`` sent just before the
    post (and delivered just after it) could mislead; half a second covers that delivery, and is
    shorter than any line, however fast the voice."""
    return HOLD_S if line.strip() else 0.0


class SessionEnder:
    def __init__(
        self,
        *,
        store: TurnStore,
        speaker: Speaker,
        clock: Clock,
        agent: AgentConfig,
        stop: Callable[[Turn, Step], TurnOutcome],
        outcome: Callable[[Turn, TurnStatus, str | None], TurnOutcome],
    ) -> None:
        self._store = store
        self._speaker = speaker
        self._clock = clock
        self._events = "speaker-events" in agent.relay.debug
        self._stop = stop
        self._outcome = outcome

    def end(self, turn: Turn, end: EndSession) -> TurnOutcome:
        """Say the line (unless the model just said something), let it play, then ``end``.

        A decision taken while the turn is the newest stands: from then on the connection starts
        no new turn, and a caller who talks over the line (an ``interrupt``, a newer prompt) cuts
        the line, not the transfer or the goodbye: ``end`` goes out unclaimed by any generation, and
        only a socket that is gone stops it. A turn a newer one had already superseded decides
        nothing."""
        already_said = (turn.spoken_this_round() + turn.tool_round_text).strip()
        line = "" if already_said else end.line
        if line and turn.posts:
            line = " " + line
        handoff = json.dumps(end.handoff, separators=(",", ":")) if end.handoff is not None else None
        try:
            if not self._store.mark_ending(turn.ticket, handoff, hold_s(line)):
                return self._stop(turn, Step.STALE)
        except StoreUnavailableError:
            logger.error("session store unavailable; ending the session all the same")
        step = self._speaker.speak(turn, line, last=True)
        if step in (Step.GONE, Step.SEND_ERROR):
            return self._stop(turn, step)
        # a line the caller cut off needs no time to play out
        sent = step != Step.STALE and self._wait_for_speech(turn)
        if not sent and self._claim(turn):
            step = self._speaker.post(turn, End(handoff_data=handoff), claim=False)
            if step != Step.OK:
                return self._stop(turn, step)
        if end.farewell:
            quietly(lambda: self._store.mark_farewell(turn.ticket.call_sid))
        self._speaker.persist_reply(turn)
        logger.info("session ended by the agent", extra={"handoff": end.handoff is not None, "by_event": sent})
        return self._outcome(turn, TurnStatus.ENDED, "handoff" if end.handoff is not None else "goodbye")

    def _wait_for_speech(self, turn: Turn) -> bool:
        """Until the last words have played: True once the speaker event's invocation sent ``end``;
        False when this turn must send it (the estimate ran out, or no event came)."""
        if turn.first_post_at is None:
            return False
        now = self._clock.monotonic()
        estimate = turn.first_post_at + turn.spoken.words / WORDS_PER_SECOND + 0.5
        if not self._events:
            wait = min(estimate - now, MAX_ESTIMATE_WAIT_S, turn.budget.deadline - now - 1.0)
            if wait > 0:
                self._clock.sleep(wait)
            return False
        grace = max(estimate, now) + 0.5 * (estimate - turn.first_post_at) + 1.5
        deadline = min(grace, now + MAX_EVENT_WAIT_S, turn.budget.deadline - 1.0)
        for _ in range(math.ceil(max(0.0, deadline - now) / POLL_S)):
            left = deadline - self._clock.monotonic()
            if left <= 0:
                break
            self._clock.sleep(min(POLL_S, left))
            if self._ended_by_event(turn):
                return True
        logger.info("no speaker event ended the session in time; ending it now")
        return False

    def _ended_by_event(self, turn: Turn) -> bool:
        try:
            pending = self._store.pending_end(turn.ticket.connection_id)
        except StoreUnavailableError:
            return False
        return pending is not None and pending.sent

    def _claim(self, turn: Turn) -> bool:
        try:
            return self._store.claim_end(turn.ticket.connection_id)
        except StoreUnavailableError:
            return True  # the decision stands: end rather than leave the caller on a mute line


def end_after_speech(store: RelayStore, sender: Sender, connection_id: str) -> bool:
    """The agent stopped speaking (``agentSpeaking`` ``off``): if the session is ending and its
    last line has had time to start, send ``end`` now (once). True if this sent it."""
    pending = store.pending_end(connection_id)
    if pending is None or pending.sent or not pending.due:
        return False
    if not store.claim_end(connection_id):
        return False
    try:
        sender.send(connection_id, End(handoff_data=pending.handoff))
    except (ConnectionGoneError, SendError):
        logger.warning("could not send end after the last words")
        return False
    logger.info("session ended once its last words were spoken (speaker event)")
    return True
