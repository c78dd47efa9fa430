"""What to do with each ConversationRelay message (the ``$default`` route).

| message            | handling                                                                 |
|--------------------|--------------------------------------------------------------------------|
| ``setup``          | bind the connection to its call (new, or resumed on the same callSid),   |
|                    | store the greeting Twilio speaks, warm the model connection; if the      |
|                    | store is down, ``end`` the session asking ``/action`` for a restart; a   |
|                    | second setup on a bound socket is ignored (a socket keeps its call)      |
| ``prompt`` last    | a turn (``turn_engine``)                                                 |
| ``prompt`` partial | warms the model; may start a speculative turn (``speculation``), which  |
|                    | speaks only once the final prompt confirms the same words              |
| ``dtmf``           | the human key: handoff to a person; any other key: a note to the model  |
| ``interrupt``      | cancel the speaking reply, store what the caller heard                   |
| ``error``          | logged (Twilio rejected something we sent); the call goes on            |
| ``info``           | logged at debug (opt-in telemetry)                                       |
| unknown / invalid  | logged and ignored; never an error frame                                 |

Nothing here raises: a route Lambda that raises makes API Gateway write an error frame into the
call's socket, which Twilio counts as an invalid message.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from voice_agent.agent.config import AgentConfig
from voice_agent.core import relay_events
from voice_agent.core.budget import Budget, Clock, SystemClock
from voice_agent.core.call_flow import SESSION_RESTART_REASON
from voice_agent.core.ending import end_after_speech
from voice_agent.core.key_entry import KeyEntry
from voice_agent.core.model import GREETING_GENERATION, CallSession, TurnKey, TurnRecord
from voice_agent.core.ports import RelayStore, Sender
from voice_agent.core.routing import AGENT_PARAMETER, Agents, routed_setup
from voice_agent.core.silence import TimerScheduler, playback_s, words_in
from voice_agent.core.speculation import Speculator
from voice_agent.core.start_hook import StartOfCall
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.core.turn_states import TurnOutcome, TurnStatus
from voice_agent.errors import (
    CallTokenMismatchError,
    ConnectionAlreadyBoundError,
    ConnectionGoneError,
    MalformedMessageError,
    SendError,
    StoreUnavailableError,
)
from voice_agent.log import bind, logger, mask_phone, text_summary
from voice_agent.protocol.inbound import (
    ConfigUpdated,
    Dtmf,
    ErrorReport,
    Info,
    Interrupt,
    Prompt,
    Setup,
    SpeakerEvent,
    Unknown,
    parse_inbound,
)
from voice_agent.protocol.outbound import End
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER

DTMF_REASON_CODE = "dtmf-transfer"
# After a drop cut a turn, how long its invocation looks for the socket Twilio reopens (about 3 s).
_FOLLOW_POLLS = 12
_FOLLOW_POLL_S = 0.25
_FOLLOW_MIN_BUDGET_S = 8.0


@dataclass(frozen=True, slots=True)
class HandledFrame:
    """What happened to one frame (for logs, metrics and tests)."""

    kind: str
    outcome: TurnOutcome | None = None
    ignored: bool = False
    refused: bool = False  # a setup that named a call without its token
    counted: str | None = None  # a metric this frame adds one to (e.g. ConfigUpdates)


class Relay:
    def __init__(
        self,
        *,
        store: RelayStore,
        engine: TurnEngine,
        sender: Sender,
        agent: AgentConfig,
        warm_model: Callable[[], None],
        keys: KeyEntry | None = None,
        timers: TimerScheduler | None = None,
        clock: Clock | None = None,
        agents: Agents | None = None,
        start_of_call: StartOfCall | None = None,
        speculator: Speculator | None = None,
    ) -> None:
        self._store = store
        self._speculator = speculator  # speculative turns on partial prompts (None: preemption off)
        self._clock = clock or SystemClock()
        self._engine = engine
        self._sender = sender
        self._agent = agent
        self._warm_model = warm_model
        self._keys = keys  # collects several keys as one answer (the collect_keys tool)
        self._timers = timers  # the greeting's silence timer and the call watch
        self._calls = _CallCache()
        self._agents = agents  # which agent answers a setup (core/routing.py); None: ``agent``
        self._start_of_call = start_of_call  # the answering agent's start-of-call hook
        self._partials = _PartialsSeen()

    def handle(
        self, connection_id: str, frame: str | bytes | None, budget: Budget, *, call_sid: str | None = None
    ) -> HandledFrame:
        """``call_sid``: the socket's call as the ``$connect`` authorizer accepted it (the event
        carries it): an execution environment that has not seen the connection knows the call
        anyway, and a turn reads its history beside the generation update."""
        if call_sid and self._calls.get(connection_id) is None:
            self._calls.put(connection_id, call_sid)
        # Log lines carry the call id from the first line on whenever it is known (frames without
        # a store lookup: error, info, partials).
        bind(call_sid=self._calls.get(connection_id))
        try:
            parsed = parse_inbound(frame)
        except MalformedMessageError as exc:
            logger.warning("malformed frame ignored", extra={"reason": str(exc)})
            return HandledFrame(kind="malformed", ignored=True)
        message = parsed.message
        if parsed.extra_fields:
            logger.debug("unmodelled fields ignored", extra={"fields": list(parsed.extra_fields)})
        try:
            return self._dispatch(connection_id, message, budget)
        except StoreUnavailableError:
            logger.error("session store unavailable; frame dropped", extra={"kind": type(message).__name__})
            return HandledFrame(kind=type(message).__name__.lower(), ignored=True)

    def forget_calls(self) -> None:
        """Forget which call each connection belongs to, as a new execution environment would
        (tests and the benchmark measure that path)."""
        self._calls.clear()
        self._engine.forget_histories()

    def _dispatch(self, connection_id: str, message: object, budget: Budget) -> HandledFrame:
        match message:
            case Setup():
                return self._on_setup(connection_id, message, budget)
            case Prompt():
                return self._on_prompt(connection_id, message, budget)
            case Dtmf():
                return self._on_dtmf(connection_id, message, budget)
            case Interrupt():
                self._on_interrupt(connection_id, message)
                return HandledFrame(kind="interrupt")
            case ErrorReport():
                relay_events.on_error(message)
                return HandledFrame(kind="error")
            case Info():
                relay_events.on_info(message)
                return HandledFrame(kind="info")
            case ConfigUpdated():
                return HandledFrame(kind="configUpdated", counted=relay_events.on_config_updated(message))
            case SpeakerEvent():
                return self._on_speaker(connection_id, message)
            case Unknown():
                logger.info("unknown message type ignored", extra={"type": message.type})
        return HandledFrame(kind="unknown", ignored=True)

    def _on_prompt(self, connection_id: str, prompt: Prompt, budget: Budget) -> HandledFrame:
        if not prompt.last:
            return self._on_partial(connection_id, prompt, budget)
        if not prompt.voice_prompt.strip():
            logger.info("empty prompt ignored")
            return HandledFrame(kind="prompt", ignored=True)
        logger.info("prompt", extra={"speech": text_summary(prompt.voice_prompt), "lang": prompt.lang})
        outcome = self._engine.run_prompt(
            connection_id,
            prompt.voice_prompt,
            budget,
            call_sid=self._calls.get(connection_id),
            lang=prompt.lang,
            speculated=self._speculator is not None,
            prestart=self._partials.take(connection_id) or self._speculator is None,
        )
        return self._turn(connection_id, "prompt", outcome, budget)

    def _on_partial(self, connection_id: str, prompt: Prompt, budget: Budget) -> HandledFrame:
        """The caller is still talking: get the model connection ready, and maybe speculate."""
        self._warm_model()
        self._partials.heard(connection_id)
        if self._speculator is None or not prompt.voice_prompt.strip():
            return HandledFrame(kind="prompt", ignored=True)
        outcome = self._speculator.on_partial(connection_id, prompt.voice_prompt, budget, prompt.lang)
        if outcome is None:
            return HandledFrame(kind="prompt", ignored=True)
        return self._turn(connection_id, "prompt", outcome, budget)

    def _on_setup(self, connection_id: str, setup: Setup, budget: Budget) -> HandledFrame:
        if self._agents is not None:
            setup = routed_setup(self._agents, setup)
        try:
            session = self._store.bind_connection(connection_id, setup)
        except ConnectionAlreadyBoundError:
            # Twilio sends one setup per socket: a second one (naming this call or another) is
            # not Twilio's to act on. The socket stays with its call; the other call is untouched.
            logger.warning("setup on a connection already bound to a call; ignored")
            return HandledFrame(kind="setup", ignored=True)
        except CallTokenMismatchError:
            # Not the socket Twilio opened for this call (its <Connect> carries the call's token):
            # the socket stays unbound, every later frame on it is ignored, the call is untouched.
            logger.warning("setup without the call's token refused")
            return HandledFrame(kind="setup", ignored=True, refused=True)
        except StoreUnavailableError:
            bind(call_sid=setup.call_sid)
            self._restart_session(connection_id)
            return HandledFrame(kind="setup")
        bind(call_sid=setup.call_sid)
        self._calls.put(connection_id, setup.call_sid)
        logger.info(
            "session bound",
            extra={
                "resumed": session.resumed,
                "connection_seq": session.conn_seq,
                "direction": setup.direction,
                "call_type": setup.call_type,
                "from": mask_phone(setup.from_number),
                "to": mask_phone(setup.to_number),
                "agent": setup.custom_parameters.get(AGENT_PARAMETER),
                "parameters": sorted(set(setup.custom_parameters) - {CALL_TOKEN_PARAMETER}),
            },
        )
        # The greeting is stored before the model is warmed (a cold import takes a second): a
        # prompt that overtook this setup is ordered after it. A socket Twilio reopened by itself
        # speaks no greeting, and the timers of the turns on the previous socket still stand.
        try:
            greeting = None if session.app_reconnect else self._store_greeting(session, setup)
        finally:
            if session.opening:  # a socket that took over from another: its turns may start now
                self._store.open_connection(connection_id)
        self._warm_model()
        if greeting is not None:
            agent = self._agents.name_of(setup.custom_parameters.get(AGENT_PARAMETER)) if self._agents else None
            self._set_timers(connection_id, setup.call_sid, session, greeting, agent)
        outcome = self._answer_owed(connection_id, budget) if session.owed else None
        if self._start_of_call is not None:
            # Last, in this setup's own invocation: the first prompt is another one and never waits.
            self._start_of_call.after_setup(setup)
        return HandledFrame(kind="setup", outcome=outcome)

    def _store_greeting(self, session: CallSession, setup: Setup) -> str:
        """Twilio speaks the greeting from the TwiML; store it so the model knows it was said. (Not
        on a socket Twilio reconnected by itself: the session goes on, nothing is spoken again.)"""
        lines = self._answering(setup).lines
        greeting = lines.reconnect_greeting if session.resumed else lines.welcome_greeting
        record = TurnRecord(key=TurnKey(session.conn_seq, GREETING_GENERATION, 1), role="assistant", text=greeting)
        try:
            self._store.put_turns(session.call_sid, [record])
        except StoreUnavailableError:
            logger.error("greeting not stored")
        return greeting

    def _follow_reconnect(self, call_sid: str, gone: str, budget: Budget) -> TurnOutcome | None:
        """This turn's socket dropped mid-reply. If Twilio reconnects by itself and sends nothing on
        the new socket (no setup, nothing to replay), nothing there would answer the caller: wait a
        little for the new socket ``$connect`` notes, bind it, and answer there."""
        for _ in range(_FOLLOW_POLLS):
            if budget.deadline - self._clock.monotonic() < _FOLLOW_MIN_BUDGET_S:
                return None
            try:
                latest = self._store.latest_socket(call_sid)
                if latest is not None and latest != gone:
                    self._store.adopt_connection(latest)  # (a setup may have bound it already)
                    return self._answer_owed(latest, budget)
                if self._store.closed_normally(gone):
                    return None  # the caller hung up: no socket is coming back
            except StoreUnavailableError:
                return None
            self._clock.sleep(_FOLLOW_POLL_S)
        return None

    def _answer_owed(self, connection_id: str, budget: Budget) -> TurnOutcome | None:
        """The call's previous socket dropped before it answered the caller (Twilio reconnected by
        itself): answer on this one, without the caller repeating it. Taken once per socket."""
        try:
            owed = self._store.take_owed(connection_id)
        except StoreUnavailableError:
            return None
        if owed is None:
            return None
        logger.info("answering what the dropped socket left unanswered", extra={"carried": len(owed)})
        return self._engine.run_prompt(
            connection_id, self._agent.lines.resume_note, budget, call_sid=self._calls.get(connection_id), carried=owed
        )

    def _answering(self, setup: Setup) -> AgentConfig:
        name = setup.custom_parameters.get(AGENT_PARAMETER)
        if self._agents is None or self._agents.name_of(name) == self._agents.default_name:
            return self._agent
        return self._agents.get(name)

    def _set_timers(
        self, connection_id: str, call_sid: str, session: CallSession, greeting: str, agent: str | None
    ) -> None:
        """Silence counts from the end of the greeting; a new call's length is watched. ``agent``:
        the one answering (its timings and lines)."""
        if self._timers is None:
            return
        self._timers.after_speech(
            call_sid,
            connection_id,
            GREETING_GENERATION,
            language=session.language,
            still_playing_s=playback_s(words_in(greeting)),
            agent=agent,
        )
        if not session.resumed:
            self._timers.watch(call_sid, agent)

    def _restart_session(self, connection_id: str) -> None:
        """The socket could not be bound to its call, so every later frame on it would be ignored:
        a mute call. End the session asking for a restart; ``/action`` resumes the call on a new
        socket (or, if DynamoDB is still down, hands the caller to a person)."""
        from voice_agent.core.builtin_tools import handoff_data

        logger.error("session store unavailable at setup; restarting the session through /action")
        data = handoff_data(SESSION_RESTART_REASON, "The session could not be stored")
        try:
            self._sender.send(connection_id, End(handoff_data=json.dumps(data, separators=(",", ":"))))
        except (ConnectionGoneError, SendError):
            logger.warning("could not ask for a session restart")

    def _on_speaker(self, connection_id: str, event: SpeakerEvent) -> HandledFrame:
        """The agent stopped speaking: if the session is ending, its last words are out; ``end`` goes
        now rather than after an estimate (``core/ending.py``). Other speaker events are logged."""
        logger.debug("speaker event", extra={"who": event.who, "speaking": event.speaking})
        if event.who == "agent" and not event.speaking:
            end_after_speech(self._store, self._sender, connection_id)
        return HandledFrame(kind="speaker")

    def _on_dtmf(self, connection_id: str, dtmf: Dtmf, budget: Budget) -> HandledFrame:
        if self._keys is not None:
            # Collecting keys (one conditional write; an ordinary key press falls through).
            taken = self._keys.on_key(connection_id, dtmf.digit, budget)
            if isinstance(taken, TurnOutcome):
                return self._turn(connection_id, "dtmf", taken, budget)
            if taken is not None:
                return HandledFrame(kind="dtmf")
        # The answering agent's human key hands off; any other key reaches its model as a note.
        outcome = self._engine.run_key(
            connection_id, dtmf.digit, budget, reason_code=DTMF_REASON_CODE, call_sid=self._calls.get(connection_id)
        )
        return self._turn(connection_id, "dtmf", outcome, budget)

    def _on_interrupt(self, connection_id: str, interrupt: Interrupt) -> None:
        self._engine.forget_histories(connection_id)  # it takes a generation: the kept history is stale
        outcome = self._store.record_interrupt(
            connection_id, interrupt.utterance_until_interrupt, interrupt.duration_until_interrupt_ms
        )
        if outcome is None:
            logger.warning("interrupt on a connection without setup; ignored")
            return
        bind(call_sid=outcome.call_sid)
        self._calls.put(connection_id, outcome.call_sid)
        logger.info(
            "interrupt",
            extra={
                "interrupted_generation": outcome.interrupted.generation,
                "cancelled": outcome.cancelled,
                "heard": text_summary(interrupt.utterance_until_interrupt),
                "duration_ms": interrupt.duration_until_interrupt_ms,
            },
        )

    def _turn(self, connection_id: str, kind: str, outcome: TurnOutcome, budget: Budget) -> HandledFrame:
        if outcome.status == TurnStatus.REPLAYED:
            # Twilio replayed a message the previous socket took: if that socket left it unanswered,
            # this is the moment to answer it (once).
            outcome = self._answer_owed(connection_id, budget) or outcome
        elif outcome.status == TurnStatus.GONE and outcome.call_sid and self._agent.application_reconnect:
            outcome = self._follow_reconnect(outcome.call_sid, connection_id, budget) or outcome
        if outcome.call_sid:
            bind(call_sid=outcome.call_sid)
            self._calls.put(connection_id, outcome.call_sid)
        logger.info(
            "turn finished",
            extra={
                "status": outcome.status,
                "generation": outcome.generation,
                "posts": outcome.posts,
                "time_to_first_phrase_ms": None
                if outcome.time_to_first_phrase_s is None
                else round(outcome.time_to_first_phrase_s * 1000, 1),
                "duration_ms": round(outcome.duration_s * 1000, 1),
                "tool_calls": outcome.tool_calls,
                "detail": outcome.detail,
            },
        )
        return HandledFrame(kind=kind, outcome=outcome)


class _CallCache:
    """connectionId -> callSid that this execution environment has seen (bounded, thread-safe).

    For log correlation, and as a hint that lets a turn read the history while it takes its
    generation; the turn checks the hint against the connection item, so a stale entry costs one
    extra query, never a wrong history.
    """

    def __init__(self, size: int = 1024) -> None:
        self._items: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, connection_id: str) -> str | None:
        with self._lock:
            return self._items.get(connection_id)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, connection_id: str, call_sid: str) -> None:
        with self._lock:
            self._items[connection_id] = call_sid
            self._items.move_to_end(connection_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class _PartialsSeen:
    """Connections with a partial prompt since their last final one, in this environment: their
    final prompt may be answered by a speculation, so it starts no model request before its turn
    start says (a final without partials, here, starts it at once: ``TurnEngine.run_prompt``).
    Another environment's partials are not seen: that final's early request is cancelled as soon
    as its turn start shows a speculation answers it."""

    def __init__(self, size: int = 1024) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def heard(self, connection_id: str) -> None:
        with self._lock:
            self._items[connection_id] = None
            self._items.move_to_end(connection_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def take(self, connection_id: str) -> bool:
        """True if no partial came on the connection since the last final prompt (and forget them)."""
        with self._lock:
            seen = connection_id in self._items
            self._items.pop(connection_id, None)
        return not seen
