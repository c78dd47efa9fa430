"""Timers: a caller who goes silent, keys that stop coming, a call that runs too long or vanished.

No Lambda waits for any of it. Each timer is a message on a queue with a delay (SQS
``DelaySeconds``, at most 900 s; a longer wait is a chain of them) that the timer function fires
(``entry/silence_timer.py``). A timer carries the connection's generation at the moment it was set:
a prompt, an interrupt, a key press or a newer reply takes a new generation, so a timer set before
them finds the generation moved and does nothing. One conditional write decides, and takes the
next generation for the line it says, so a prompt that arrives at the same moment wins or loses
cleanly (``docs/architecture.md``, "Timers").

| timer       | set when                               | fires, if nothing happened since it was set         |
|-------------|----------------------------------------|-----------------------------------------------------|
| ``silence`` | a reply's ``last`` went out (and the   | reminder *n*, then ``silence`` *n+1*; after the last |
|             | greeting): playback + silence_after_s  | reminder the goodbye, then ``hangup``               |
| ``keys``    | key entry starts (after its line), and | the re-prompt, then ``keys`` again; after the       |
|             | after every key                        | re-prompts the entry ends with what came: one turn  |
| ``hangup``  | a timer's goodbye or time-limit line   | ``end`` (the line has played)                       |
| ``watch``   | the call's first setup; then every 15  | past ``max_call_s``: the time-limit line, then      |
|             | minutes                                | ``hangup``; the socket closed a minute ago and      |
|             |                                        | nothing ended the call: cut off (its record); the   |
|             |                                        | call over with no record long after: ask again      |

Timers are delivered at least once (a queue), and each one is idempotent: a second delivery finds
the generation moved by the first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final, Literal

from voice_agent.agent.config import AgentConfig, TimedLines
from voice_agent.core.budget import Budget
from voice_agent.core.model import FIRST_AGENT_PART, CallWatch, QuietTurn, RecordRequest, Timer, TurnKey, TurnRecord
from voice_agent.core.ports import RecordQueue, Sender, Timers, TimerStore
from voice_agent.core.routing import Agents
from voice_agent.errors import ConnectionGoneError, QueueError, SendError, StoreUnavailableError
from voice_agent.log import bind, logger
from voice_agent.protocol.outbound import End, Text

MAX_DELAY_S: Final = 900  # SQS DelaySeconds
WORDS_PER_SECOND: Final = 2.5  # how fast a voice speaks (the turn engine's estimate too)
PLAYBACK_MARGIN_S: Final = 0.5
CUT_OFF_GRACE_S: Final = 60  # a socket closed this long with no end callback: the call is over
WATCH_RETRY_S: Final = 30  # the socket is between sessions: look again this soon
MAX_WATCH_CHECKS: Final = 400  # more than a day of checks: the chain stops whatever it finds
# A call over this long without its record: the request was lost (a transfer's record waits up to
# 15 minutes for the dial result, so longer than that).
RECORD_OVERDUE_S: Final = 960

FINAL_CALL_STATUSES: Final = frozenset({"completed", "ended", "transferred", "voicemail", "cut_off"})

Fired = Literal[
    "stale",
    "reminded",
    "silence_goodbye",
    "ended",
    "reprompted",
    "keys_unfinished",
    "time_limit",
    "cut_off",
    "watching",
    "over",
    "off",
]

# The turn a timer runs when key entry ends without its last key: (connection, note, shown, budget).
RunTurn = Callable[[str, str, str, Budget], object]


def playback_s(words: int) -> float:
    """How long a voice takes to say ``words`` words."""
    return words / WORDS_PER_SECOND + PLAYBACK_MARGIN_S


def words_in(text: str) -> int:
    return len(text.split())


class TimerScheduler:
    """Sets the timers (from the turn engine, the relay and the key entry). A timer that cannot be
    set is logged and forgotten: the call goes on, without that reminder."""

    def __init__(
        self,
        *,
        timers: Timers,
        agent: AgentConfig,
        agents: Agents | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._timers = timers
        self._agent = agent
        self._agents = agents  # each call's timings come from the agent that answers it
        self._now = now

    def config_for(self, agent: str | None) -> AgentConfig:
        """The agent called ``agent`` (the default one for None, or a name no longer in the folder)."""
        return self._agents.get(agent) if self._agents is not None and agent else self._agent

    def after_speech(
        self,
        call_sid: str,
        connection_id: str,
        gen: int,
        *,
        language: str | None,
        still_playing_s: float,
        reminders_said: int = 0,
        agent: str | None = None,
    ) -> None:
        """The agent's ``last`` went out at generation ``gen``; its words play ``still_playing_s``
        more seconds. Silence is counted from then. ``agent``: the one answering the call."""
        after = self.config_for(agent).timing.silence_after_s
        if after <= 0:
            return
        timer = Timer("silence", call_sid, connection_id, gen, step=reminders_said, language=language, agent=agent)
        self._set(timer, max(0.0, still_playing_s) + after)

    def key_pause(
        self,
        call_sid: str,
        connection_id: str,
        gen: int,
        *,
        entry: int,
        reprompts: int,
        language: str | None,
        still_playing_s: float = 0.0,
        agent: str | None = None,
    ) -> None:
        """A key entry waits for its next key (after its line, or after a key)."""
        timer = Timer("keys", call_sid, connection_id, gen, step=reprompts, entry=entry, language=language, agent=agent)
        self._set(timer, max(0.0, still_playing_s) + self.config_for(agent).timing.key_timeout_s)

    def watch(self, call_sid: str, agent: str | None = None) -> None:
        """The call's first socket is up (now): watch its length, and whether it vanished."""
        limit = self.config_for(agent).timing.max_call_s
        deadline = int(self._now()) + limit if limit > 0 else 0
        timer = Timer("watch", call_sid, deadline=deadline, agent=agent)
        self._set(timer, next_watch_in(deadline, self._now()))

    def _set(self, timer: Timer, delay_s: float) -> None:
        try:
            self._timers.schedule(timer, delay_s)
        except QueueError:
            logger.warning("timer not set", extra={"timer": timer.kind})


def next_watch_in(deadline: int, now: float) -> float:
    """When the watch looks next: at the deadline, or in 15 minutes (it also looks for cut-off calls)."""
    if deadline <= 0:
        return MAX_DELAY_S
    return min(MAX_DELAY_S, max(1.0, deadline - now))


class TimerHandler:
    """Fires one timer: at most one conditional write decides, then at most one line and one timer."""

    def __init__(
        self,
        *,
        store: TimerStore,
        sender: Sender,
        timers: Timers,
        agent: AgentConfig,
        agents: Agents | None = None,
        records: RecordQueue | None = None,
        run_turn: RunTurn | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._timers = timers
        self._records = records
        self._run_turn = run_turn
        self._now = now
        self._schedule = TimerScheduler(timers=timers, agent=agent, agents=agents, now=now)

    def fire(self, timer: Timer, budget: Budget) -> Fired:
        """Fire ``timer`` with the timings and lines of the agent that answers its call (the
        default agent for a timer that names none, or names one no longer in the folder)."""
        bind(call_sid=timer.call_sid, connection_id=timer.connection_id or None)
        agent = self._schedule.config_for(timer.agent)
        match timer.kind:
            case "silence":
                return self._silence(timer, agent)
            case "keys":
                return self._keys(timer, budget, agent)
            case "hangup":
                return self._hangup(timer)
            case "watch":
                return self._watch(timer, agent)

    # -- silence --------------------------------------------------------------------------------

    def _silence(self, timer: Timer, agent: AgentConfig) -> Fired:
        if agent.timing.silence_after_s <= 0:
            return "off"
        lines = _lines(agent, timer.language)
        if timer.step < len(lines.reminders):
            text = lines.reminders[timer.step]
            quiet = self._store.take_quiet_turn(timer.connection_id, timer.gen, text)
            if quiet is None:
                return "stale"
            logger.info("silence reminder", extra={"reminder": timer.step + 1})
            if self._say(timer.connection_id, quiet, text):
                self._schedule.after_speech(
                    timer.call_sid,
                    timer.connection_id,
                    quiet.generation,
                    language=quiet.language or timer.language,
                    still_playing_s=playback_s(words_in(text)),
                    reminders_said=timer.step + 1,
                    agent=timer.agent,
                )
            return "reminded"
        text = lines.silence_goodbye
        quiet = self._store.take_quiet_turn(timer.connection_id, timer.gen, text, ending=True)
        if quiet is None:
            return "stale"
        logger.info("no answer after the reminders: ending the call")
        self._quietly(lambda: self._store.set_end_reason(timer.call_sid, "no_response"))
        if self._say(timer.connection_id, quiet, text):
            self._hang_up_after(timer, quiet, text)
        return "silence_goodbye"

    # -- keys -----------------------------------------------------------------------------------

    def _keys(self, timer: Timer, budget: Budget, agent: AgentConfig) -> Fired:
        timing = agent.timing
        if timer.step < timing.key_reprompts:
            text = _lines(agent, timer.language).key_reprompt
            quiet = self._store.take_quiet_turn(timer.connection_id, timer.gen, text, key_entry=timer.entry)
            if quiet is None:
                return "stale"
            logger.info("key entry paused: re-prompt", extra={"reprompt": timer.step + 1})
            if self._say(timer.connection_id, quiet, text):
                self._schedule.key_pause(
                    timer.call_sid,
                    timer.connection_id,
                    quiet.generation,
                    entry=timer.entry,
                    reprompts=timer.step + 1,
                    language=quiet.language or timer.language,
                    still_playing_s=playback_s(words_in(text)),
                    agent=timer.agent,
                )
            return "reprompted"
        keys = self._store.close_key_entry(timer.connection_id, timer.entry, gen=timer.gen)
        if keys is None:
            return "stale"
        from voice_agent.core.key_entry import unfinished_note

        note, shown = unfinished_note(keys)
        logger.info("key entry ended without its last key", extra={"keys": len(keys)})
        if self._run_turn is not None:
            self._run_turn(timer.connection_id, note, shown, budget)
        return "keys_unfinished"

    # -- the end --------------------------------------------------------------------------------

    def _hangup(self, timer: Timer) -> Fired:
        if not self._store.claim_end(timer.connection_id):
            return "stale"
        try:
            self._sender.send(timer.connection_id, End())
        except ConnectionGoneError:
            self._quietly(lambda: self._store.close_connection(timer.connection_id, gone=True))
        except SendError:
            logger.warning("could not send end after the timer's goodbye")
        return "ended"

    def _hang_up_after(self, timer: Timer, quiet: QuietTurn, text: str) -> None:
        """``end`` once the line has played: Twilio may end the session as soon as it arrives."""
        hangup = Timer("hangup", timer.call_sid, timer.connection_id, quiet.generation)
        try:
            self._timers.schedule(hangup, playback_s(words_in(text)))
        except QueueError:
            logger.error("hang-up timer not set; ending now")
            self._hangup(hangup)

    def _watch(self, timer: Timer, agent: AgentConfig) -> Fired:
        watch = self._store.watch_call(timer.call_sid)
        if watch is None:
            return "over"
        now = self._now()
        if watch.status in FINAL_CALL_STATUSES:
            return self._record_backstop(timer, watch, now)
        socket_open = watch.connection_status == "open"
        if not socket_open and watch.closed_at is not None and now - watch.closed_at >= CUT_OFF_GRACE_S:
            return self._cut_off(timer)
        if timer.deadline and now >= timer.deadline - 1 and socket_open and watch.connection_id:
            fired = self._time_limit(timer, watch, watch.connection_id, agent)
            if fired is not None:
                return fired
        if timer.step + 1 >= MAX_WATCH_CHECKS:
            logger.warning("call watch gave up")
            return "over"
        delay = next_watch_in(timer.deadline, now) if socket_open else WATCH_RETRY_S
        if timer.deadline and now >= timer.deadline - 1:
            delay = WATCH_RETRY_S  # past the limit with no open socket: between sessions
        try:
            self._timers.schedule(replace(timer, step=timer.step + 1), delay)
        except QueueError:
            logger.error("call watch not set again")
        return "watching"

    def _cut_off(self, timer: Timer) -> Fired:
        """The socket closed a while ago and no end callback came: the call was cut off."""
        if self._store.mark_cut_off(timer.call_sid):
            logger.warning("the call ended without its end callback: cut off")
            self._request_record(RecordRequest(timer.call_sid, outcome="cut_off"))
            return "cut_off"
        return "over"

    def _time_limit(self, timer: Timer, watch: CallWatch, connection_id: str, agent: AgentConfig) -> Fired | None:
        """The call reached its time limit: say the line, then hang up once it has played."""
        text = _lines(agent, watch.language).time_limit
        quiet = self._store.end_for_time_limit(connection_id, text)
        if quiet is None:
            return None
        logger.info("the call reached its time limit")
        self._quietly(lambda: self._store.set_end_reason(timer.call_sid, "time_limit"))
        if self._say(connection_id, quiet, text):
            self._hang_up_after(replace(timer, connection_id=connection_id), quiet, text)
        return "time_limit"

    def _record_backstop(self, timer: Timer, watch: CallWatch, now: float) -> Fired:
        """The call is over. Its record is normally made within seconds; if a request was lost (a
        queue that refused it), ask once more when it is clearly overdue."""
        if watch.recorded or self._records is None:
            return "over"
        overdue_in = (watch.ended_at or 0) + RECORD_OVERDUE_S - now
        if overdue_in <= 0:
            logger.warning("call over without its record: asking again")
            self._request_record(RecordRequest(timer.call_sid))
            return "over"
        if timer.step + 1 >= MAX_WATCH_CHECKS:
            return "over"
        try:
            self._timers.schedule(replace(timer, step=timer.step + 1), min(MAX_DELAY_S, overdue_in + 1))
        except QueueError:
            logger.error("call watch not set again")
        return "watching"

    # -- helpers --------------------------------------------------------------------------------

    def _say(self, connection_id: str, quiet: QuietTurn, text: str) -> bool:
        """Store the line (the next turn's history holds it), then say it. False if the caller is gone."""
        record = TurnRecord(
            key=TurnKey(quiet.conn_seq, quiet.generation, FIRST_AGENT_PART), role="assistant", text=text
        )
        self._quietly(lambda: self._store.put_turns(quiet.call_sid, [record]))
        try:
            self._sender.send(connection_id, Text(text, last=True))
        except ConnectionGoneError:
            self._quietly(lambda: self._store.close_connection(connection_id, gone=True))
            return False
        except SendError:
            logger.warning("timer line not delivered")
            return False
        return True

    def _request_record(self, request: RecordRequest) -> None:
        if self._records is None:
            return
        try:
            self._records.request(request)
        except QueueError:
            logger.error("call record not requested")

    @staticmethod
    def _quietly(action: Callable[[], object]) -> None:
        try:
            action()
        except StoreUnavailableError:
            logger.error("session store write lost")


def whole_seconds(delay_s: float) -> int:
    """SQS delays are whole seconds, 0..900: round up (a timer is never early)."""
    return max(0, min(MAX_DELAY_S, math.ceil(delay_s)))


def _lines(agent: AgentConfig, language: str | None) -> TimedLines:
    return agent.timing.lines_for(language, agent.language)
