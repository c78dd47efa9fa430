"""The turn engine: one caller utterance in, one streamed, interruptible spoken reply out.

A turn (``docs/architecture.md``, "A turn, and an interruption"):

1. Take a new generation for the connection (one atomic DynamoDB update, which also returns what
   the reply on the air had sent and the caller's messages no reply has answered yet) and load
   the history (one query). The history shows what the caller heard, not what was generated.
   When this execution environment already knows the connection's call (it handled the setup, or
   an earlier frame), both requests run at once and the model request leaves one round trip sooner.
2. Start the model request at once; store the caller's message while the model thinks.
3. Coalesce tokens into phrases (``phrases.py``), pass each through the output guard
   (``guard.py``), and post it, in order. Every post is covered by a claim of the generation that
   completes before the post: if an interrupt or a newer prompt (another, concurrent Lambda) took
   it, stop, cancel the model request, and send nothing more (in particular no ``last``).
4. Tool calls are executed with a time limit (a short filler line if one is slow), stored, and fed
   back for another round. A tool may end the session (transfer to a person, end the call): a
   decision taken while the turn is the newest stands, even if the caller talks over the line.
5. Store the agent's message, claim, then finish with ``last: true``: once ``last`` is out, the
   next prompt's history holds the reply. If the claim or the send fails, the stored message is
   rewritten to what the caller heard.

Failures become speech, never exceptions: a model error or timeout is a short apology, a turn that
would outlive the API Gateway integration (29 s) is cut short with a spoken line.

A stream is read beside the turn (``ModelPump``; the threads live in ``adapters/threads.py``), so
the turn's own thread can flush a phrase when its time window runs out (a model that pauses
mid-sentence) and enforce the first-token, token-gap and turn deadlines whatever the transport
does. How a turn can end, and what each ending says, is one table: ``turn_states.STOPS``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TypeVar

from voice_agent.agent.config import AgentConfig
from voice_agent.core.budget import Budget, Clock, SystemClock
from voice_agent.core.effects import message_for
from voice_agent.core.ending import SessionEnder
from voice_agent.core.guard import OutputGuard
from voice_agent.core.history import conversation
from voice_agent.core.history_cache import HistoryCache
from voice_agent.core.model import (
    GREETING_GENERATION,
    USER_PART,
    ChatMessage,
    ChatRequest,
    StreamFailed,
    StreamFinished,
    TextDelta,
    ToolCall,
    ToolSpec,
    TurnKey,
    TurnRecord,
    TurnTicket,
)
from voice_agent.core.phrases import PhraseCoalescer
from voice_agent.core.ports import ChatModel, ModelPump, Sender, StartPump, TurnStore
from voice_agent.core.prompt_template import guarded_text, system_prompt
from voice_agent.core.silence import TimerScheduler, playback_s
from voice_agent.core.speaker import Speaker, quietly
from voice_agent.core.speculation_rules import answered_by_speculation
from voice_agent.core.tool_runner import ToolRunner
from voice_agent.core.tools import (
    Effect,
    EndSession,
    StartKeyEntry,
    SwitchLanguage,
    ToolContext,
    ToolRegistry,
    ToolResult,
)
from voice_agent.core.turn_states import STOPS, Step, Turn, TurnOutcome, TurnStatus
from voice_agent.errors import (
    LLMError,
    ReplayedMessageError,
    StoreUnavailableError,
)
from voice_agent.log import bind, logger
from voice_agent.protocol.outbound import Text

_R = TypeVar("_R")

_OPEN_WAIT_S = 0.05
# How long a turn waits for a connection its setup has not bound yet (about 1.5 s in all).
_SETUP_RACE_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.75)


def _holds_the_message_on_air(history: Sequence[TurnRecord], ticket: TurnTicket) -> bool:
    """Whether ``history`` has the caller message of the reply on the air (the greeting has none)."""
    air = ticket.on_air.generation
    if air <= GREETING_GENERATION:
        return True
    return any(r.role == "user" and r.key.conn_seq == ticket.conn_seq and r.key.generation == air for r in history)


def _answering(ticket: TurnTicket) -> str | None:
    """The name of the agent that answers the ticket's call (its timers use its timings)."""
    return ticket.context.agent if ticket.context is not None and ticket.context.agent else None


def _follows_the_socket_setup(history: Sequence[TurnRecord], ticket: TurnTicket) -> bool:
    """Whether a history read that left beside the turn start can be trusted to come after the
    socket's setup. After the socket's first reply, always. Before it, only if it holds the
    socket's greeting: a socket taking over from another one opens for turns only once its
    handover (what the previous socket was saying, marked as heard) and then its greeting are
    stored, but a read that left just before the opening can miss both."""
    if ticket.on_air.generation > GREETING_GENERATION:
        return True
    return any(r.key.conn_seq == ticket.conn_seq and r.key.generation == GREETING_GENERATION for r in history)


@dataclass(frozen=True, slots=True)
class _Heard:
    """How the caller's message came: what a transcript shows instead of it, the language Twilio
    heard it in, and what a dropped socket left unanswered (``run_prompt``'s arguments)."""

    shown: str | None = None
    lang: str | None = None
    carried: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A model request started before the turn's generation was taken, and what it asked."""

    request: ChatRequest
    pump: ModelPump


def _drop(early: Future[list[TurnRecord]] | None, ahead: _Ahead | None) -> None:
    if early is not None:
        early.cancel()  # a no-op once it has started; its result is ignored
    if ahead is not None:
        ahead.pump.cancel()


@dataclass(frozen=True, slots=True)
class _RoundResult:
    step: Step
    tool_calls: tuple[ToolCall, ...] = ()
    detail: str | None = None


class TurnEngine:
    def __init__(
        self,
        *,
        store: TurnStore,
        sender: Sender,
        model: Callable[[], ChatModel],
        agent: AgentConfig,
        tools: ToolRegistry,
        clock: Clock | None = None,
        start_pump: StartPump | None = None,
        tool_pool: Executor | None = None,
        store_pool: Executor | None = None,
        timers: TimerScheduler | None = None,
        agents: Callable[[str], TurnEngine] | None = None,
    ) -> None:
        from voice_agent.adapters import threads  # the default threads live outside the core

        self._store = store
        self._sender = sender
        self._model = model
        self._agent = agent
        self._tools = tools
        self._clock = clock or SystemClock()
        self._start_pump = start_pump or threads.start_pump
        self._speaker = Speaker(store=store, sender=sender, clock=self._clock)
        self._runner = ToolRunner(
            tools=tools, clock=self._clock, pool=tool_pool or threads.TOOL_POOL, filler_after_s=agent.filler_after_s
        )
        self._store_pool = store_pool or threads.STORE_POOL
        self._history = HistoryCache()  # the history each connection's last turn here left
        self._keep_history = agent.preemption.keep_history
        self._timers = timers  # silence and key-entry timers, set once a reply's ``last`` is out
        self._ender = SessionEnder(
            store=store,
            speaker=self._speaker,
            clock=self._clock,
            agent=agent,
            stop=lambda turn, step: self._stop(turn, _RoundResult(step)),
            outcome=self._outcome,
        )
        # The engine of the agent that answered a call, by its name (wiring.py builds one per
        # agent); None: this engine's agent answers every call.
        self._agents = agents

    # -- entry points ---------------------------------------------------------------------------

    def run_prompt(
        self,
        connection_id: str,
        text: str,
        budget: Budget,
        *,
        call_sid: str | None = None,
        carried: tuple[str, ...] = (),
        lang: str | None = None,
        shown: str | None = None,
        speculated: bool = False,
        prestart: bool = False,
    ) -> TurnOutcome:
        """Answer one final ``prompt`` (or a key press turned into a note).

        ``call_sid``: the connection's call, if this execution environment knows it; the history is
        then read while the generation is taken instead of after it (unless the environment holds
        the history the connection's last turn left, ``core/history_cache.py``: then no query at
        all). ``carried``: what the call's previous socket left unanswered (an owed turn after an
        application reconnect). ``lang``: the language Twilio heard the prompt in (stored with it,
        and told to the model). ``shown``: what the call's transcript shows for the caller's message
        instead of ``text`` (keys keyed in). ``speculated``: a caller's final prompt, which a
        speculation on the same words may already be answering (``core/speculation.py``).
        ``prestart``: no speculation is expected (no partial prompt came before); with the history
        this environment kept for the connection, the model request leaves before the generation
        is taken (``_ahead``), and no DynamoDB round trip is left before it.
        """
        started = self._clock.monotonic()
        early: Future[list[TurnRecord]] | None = None
        if call_sid and not self._history.knows(connection_id):
            early = self._beside(self._store.load_history, call_sid, self._agent.max_history_items)
        early_request = prestart and self._agent.preemption.early_request
        ahead = self._ahead(connection_id, call_sid, text, carried, lang) if early_request else None
        turn = self._begin(connection_id, started, budget, text)
        if isinstance(turn, TurnOutcome) or (speculated and answered_by_speculation(turn.ticket)):
            _drop(early, ahead)
            if isinstance(turn, TurnOutcome):
                return turn
            logger.info("final prompt confirms the speculation; it speaks")
            return self._outcome(turn, TurnStatus.SPECULATED)
        heard = _Heard(shown, lang, carried)
        engine = self._engine_for(turn)
        if engine is not self:  # another agent answered this call: its engine runs the turn
            _drop(None, ahead)  # (asked with this agent's prompt)
            same = engine.history_items == self.history_items  # else the early read has the wrong length
            return engine._answer(turn, text, heard, early if same else None, call_sid)
        return self._answer(turn, text, heard, early, call_sid, ahead=ahead)

    @property
    def history_items(self) -> int:
        return self._agent.max_history_items

    def for_ticket(self, ticket: TurnTicket) -> TurnEngine:
        """The engine of the agent the call's context names (``wiring.py`` builds one per agent)."""
        if self._agents is None or ticket.context is None:
            return self
        return self._agents(ticket.context.agent)

    def _engine_for(self, turn: Turn) -> TurnEngine:
        """The engine of the agent that answers this turn's call, with this turn's guard and
        phrasing made that agent's."""
        engine = self.for_ticket(turn.ticket)
        if engine is not self:
            turn.guard = OutputGuard(guarded_text(engine._agent), engine._agent.max_reply_chars)
            turn.coalescer = PhraseCoalescer(engine._agent.phrases)
        return engine

    def _answer(
        self,
        turn: Turn,
        text: str,
        heard: _Heard,
        early: Future[list[TurnRecord]] | None,
        call_sid: str | None,
        *,
        ahead: _Ahead | None = None,
    ) -> TurnOutcome:
        try:
            history = self._history_for(turn, early, call_sid)
        except StoreUnavailableError:
            _drop(None, ahead)
            self._speaker.post(turn, Text(self._agent.lines.apology, last=True), claim=False)
            return self._outcome(turn, TurnStatus.STORE_ERROR, "history")
        turn.read = tuple(history)
        messages = self.messages_for(turn.ticket, history, text, heard.carried, heard.lang)
        turn.guard.heard_before(m.content for m in messages if m.role == "assistant")
        pump = None
        if ahead is not None:
            if ahead.request == self.first_request(messages, turn.ticket.direction):
                pump = ahead.pump  # the request that left before the generation was taken is this turn's
            else:  # something changed since the last turn here (another environment's frames): ask again
                logger.info("early model request discarded; the connection changed since its last turn here")
                _drop(None, ahead)
        user = self.user_record(turn.ticket, text, heard.lang, heard.shown)
        return self._converse(turn, messages, user, first_pump=pump)

    def _ahead(
        self, connection_id: str, call_sid: str | None, text: str, carried: tuple[str, ...], lang: str | None
    ) -> _Ahead | None:
        """Start the model request before the generation is taken, on the history this environment
        kept for the connection (``HistoryCache.guess``): the turn keeps it only if the request it
        builds from the real ticket and history is the same one."""
        guess = self._history.guess(connection_id, call_sid, text) if call_sid else None
        if guess is None:
            return None
        messages = self.messages_for(guess.ticket, guess.history, text, carried, lang)
        request = self.first_request(messages, guess.ticket.direction)
        try:
            return _Ahead(request, self.start_model(request))
        except LLMError:
            return None

    def messages_for(
        self,
        ticket: TurnTicket,
        history: Sequence[TurnRecord],
        text: str,
        carried: tuple[str, ...] = (),
        lang: str | None = None,
    ) -> list[ChatMessage]:
        """The model's messages for ``text``: the system prompt, the history as the caller lived it."""
        return [
            ChatMessage(role="system", content=self._system_prompt(ticket, lang)),
            *conversation(ticket, history, text, carried),
        ]

    @staticmethod
    def user_record(ticket: TurnTicket, text: str, lang: str | None = None, shown: str | None = None) -> TurnRecord:
        key = TurnKey(ticket.conn_seq, ticket.generation, USER_PART)
        return TurnRecord(key=key, role="user", text=text, lang=lang, shown=shown)

    def history_for(self, ticket: TurnTicket, after: int) -> list[TurnRecord]:
        """The call's history as generation ``after`` left it: from this environment's cache when
        the connection item shows nothing changed since, else one query."""
        cached = (
            None
            if ticket.later_socket
            else self._history.history(ticket.connection_id, ticket.call_sid, after, ticket.on_air)
        )
        if cached is not None:
            return cached
        return self._store.load_history(ticket.call_sid, self._agent.max_history_items)

    def _history_for(
        self, turn: Turn, early: Future[list[TurnRecord]] | None, call_sid: str | None
    ) -> list[TurnRecord]:
        ticket = turn.ticket
        cached = None
        if not ticket.later_socket:  # (a later socket's turns do not move this one's generation)
            cached = self._history.history(ticket.connection_id, ticket.call_sid, ticket.generation - 1, ticket.on_air)
        if cached is not None:
            return cached
        if early is not None and ticket.call_sid == call_sid and not turn.waited_for_setup:
            history = early.result()
            if _holds_the_message_on_air(history, ticket) and _follows_the_socket_setup(history, ticket):
                return history
            # The reply on the air claimed its first phrase (clearing the unanswered messages) after
            # the early read left: its caller message is stored by now, so read again (a reply
            # spoken from held tokens, or a timer's line, which has no caller message). Or the
            # read may have left before the socket's setup had stored what it hands over.
            logger.info("history read again: the early read may predate the reply on the air or the setup")
        elif early is not None:
            early.cancel()  # a no-op once it has started; its result is ignored
        return self._store.load_history(ticket.call_sid, self._agent.max_history_items)

    def forget_histories(self, connection_id: str | None = None) -> None:
        """Drop the history this environment kept for a connection (an interrupt here: the next
        turn's guess would be wrong, and its early request wasted), or every one, as a new
        execution environment would."""
        self._history.forget(connection_id)

    def _system_prompt(self, ticket: TurnTicket, lang: str | None) -> str:
        """The agent's prompt rendered for this call (``core/prompt_template.py``), and the language
        the caller's words were heard in (when Twilio says)."""
        rendered = system_prompt(self._agent, ticket.context)
        if not lang:
            return rendered
        return f"{rendered}\n\n{self._agent.lines.language_note.format(lang=lang)}"

    def run_key(
        self, connection_id: str, digit: str, budget: Budget, *, reason_code: str, call_sid: str | None = None
    ) -> TurnOutcome:
        """A key pressed outside key entry, answered by the agent that answers the call (its engine,
        known once the turn has its ticket): that agent's human key hands the call to a person
        without the model; any other key reaches the model as that agent's note. (The unanswered
        message the turn start notes is worded by this engine's agent.)"""
        early: Future[list[TurnRecord]] | None = None
        if call_sid and not self._history.knows(connection_id):
            early = self._beside(self._store.load_history, call_sid, self._agent.max_history_items)
        noted = self._agent.lines.dtmf_note.format(digit=digit)
        turn = self._begin(connection_id, self._clock.monotonic(), budget, noted)
        if isinstance(turn, TurnOutcome):
            _drop(early, None)
            return turn
        engine = self._engine_for(turn)
        agent = engine._agent
        note = agent.lines.dtmf_note.format(digit=digit)
        if agent.human_key is not None and digit == agent.human_key:
            _drop(early, None)
            logger.info("human key pressed: handing off")
            return engine._hand_off(turn, note, reason_code, f"The caller pressed {digit} to reach a person")
        same = engine.history_items == self.history_items  # else the early read has the wrong length
        return engine._answer(turn, note, _Heard(), early if same else None, call_sid)

    def run_handoff(
        self, connection_id: str, *, note: str, reason_code: str, reason: str, budget: Budget
    ) -> TurnOutcome:
        """Transfer to a person without asking the model (the human key was pressed)."""
        turn = self._begin(connection_id, self._clock.monotonic(), budget, note)
        if isinstance(turn, TurnOutcome):
            return turn
        engine = self._engine_for(turn)
        if engine is not self:
            return engine._hand_off(turn, note, reason_code, reason)
        return self._hand_off(turn, note, reason_code, reason)

    def _hand_off(self, turn: Turn, note: str, reason_code: str, reason: str) -> TurnOutcome:
        from voice_agent.core.builtin_tools import handoff_data

        user = TurnRecord(key=TurnKey(turn.ticket.conn_seq, turn.ticket.generation, USER_PART), role="user", text=note)
        self._speaker.persist(turn, [user])
        end = EndSession(line=self._agent.lines.handoff, handoff=handoff_data(reason_code, reason))
        return self._end_session(turn, end)

    # -- the conversation loop ------------------------------------------------------------------

    def _begin(self, connection_id: str, started: float, budget: Budget, text: str) -> Turn | TurnOutcome:
        waited = False
        try:
            ticket = self._start(connection_id, text)
            # Frames are concurrent invocations: a prompt can overtake the setup that binds its
            # connection (a cold setup Lambda, a caller who speaks at once). Wait for it, briefly.
            for delay in _SETUP_RACE_WAITS_S:
                if ticket is not None or self._clock.monotonic() + delay > budget.deadline - 2.0:
                    break
                self._clock.sleep(delay)
                waited = True
                ticket = self._store.start_turn(connection_id, text)
                if ticket is not None:
                    logger.info("prompt arrived before its setup was stored; waited for it")
        except ReplayedMessageError:
            logger.info("replayed message already taken by the previous socket; not answered twice")
            return TurnOutcome(status=TurnStatus.REPLAYED, duration_s=self._since(started))
        except StoreUnavailableError:
            # Without the store there is no generation to guard, but the caller still hears why.
            self._speaker.send_quietly(connection_id, Text(self._agent.lines.apology, last=True))
            return TurnOutcome(status=TurnStatus.STORE_ERROR, detail="start_turn", duration_s=self._since(started))
        if ticket is None:
            logger.warning("prompt on a connection that is not open (no setup yet, or ending); ignored")
            return TurnOutcome(status=TurnStatus.UNKNOWN_CONNECTION, duration_s=self._since(started))
        bind(call_sid=ticket.call_sid)
        return self._new_turn(ticket, started, budget, waited=waited)

    def _new_turn(self, ticket: TurnTicket, started: float, budget: Budget, *, waited: bool = False) -> Turn:
        return Turn(
            ticket=ticket,
            started=started,
            budget=budget,
            guard=OutputGuard(guarded_text(self._agent), self._agent.max_reply_chars),
            coalescer=PhraseCoalescer(self._agent.phrases),
            waited_for_setup=waited,
            # A session speaking "multi" (ElevenLabs picks the language per text) tags each text.
            reply_lang="multi" if (ticket.language or self._agent.language) == "multi" else None,
        )

    # -- a speculation's turn (``core/speculation.py``) -----------------------------------------

    def first_request(self, messages: Sequence[ChatMessage], direction: str) -> ChatRequest:
        """The request the first round of a turn on ``messages`` sends (tools offered)."""
        specs = [t.spec(self._agent) for t in self._tools.offered(self._agent, direction)]
        return self._request(messages, specs, last_round=self._agent.max_tool_rounds == 0)

    def start_model(self, request: ChatRequest) -> ModelPump:
        """Start a model request read beside the caller (raises ``LLMError`` if no model)."""
        return self._start_pump(self._model(), request)

    def answer_held(
        self,
        ticket: TurnTicket,
        budget: Budget,
        messages: Sequence[ChatMessage],
        history: Sequence[TurnRecord],
        pump: ModelPump | None,
        *,
        lang: str | None = None,
    ) -> TurnOutcome:
        """Answer a confirmed speculation: the turn of ``ticket`` (the final prompt's generation),
        whose first model round is ``pump``, already streaming into its queue (``None``: start one).
        From here it is an ordinary turn: every phrase claimed before it is posted. The caller's
        message stored is the final prompt's words, as its turn start noted them."""
        bind(call_sid=ticket.call_sid)
        turn = self._new_turn(ticket, self._clock.monotonic(), budget)
        turn.read = tuple(history)
        text = ticket.unanswered[-1] if ticket.unanswered else ""
        turn.guard.heard_before(m.content for m in messages if m.role == "assistant")
        return self._converse(turn, list(messages), self.user_record(ticket, text, lang), first_pump=pump)

    def _start(self, connection_id: str, text: str) -> TurnTicket | None:
        """The turn's generation; on a socket no setup has bound, first the binding Twilio's
        application reconnect may leave to the first message (it may send no setup)."""
        ticket = self._store.start_turn(connection_id, text)
        if ticket is None and self._store.adopt_connection(connection_id) is not None:
            ticket = self._store.start_turn(connection_id, text)
        return ticket

    def _request(self, messages: Sequence[ChatMessage], specs: Sequence[ToolSpec], *, last_round: bool) -> ChatRequest:
        return ChatRequest(
            messages=tuple(messages),
            tools=() if last_round else tuple(specs),
            max_tokens=self._agent.max_reply_tokens,
            temperature=self._agent.temperature,
        )

    def _converse(
        self, turn: Turn, messages: list[ChatMessage], user: TurnRecord, first_pump: ModelPump | None = None
    ) -> TurnOutcome:
        offered = self._tools.offered(self._agent, turn.ticket.direction)
        specs = [t.spec(self._agent) for t in offered]
        rounds = self._agent.max_tool_rounds + 1
        for round_no in range(rounds):
            request = self._request(messages, specs, last_round=round_no == rounds - 1)
            held = first_pump if round_no == 0 else None
            result = self._stream_round(turn, request, persist=[user] if round_no == 0 else [], pump=held)
            if result.step != Step.FINISHED:
                return self._stop(turn, result)
            if not result.tool_calls:
                return self._finish(turn)
            # A tool round: speak what is pending, run the tools, store both halves together.
            pending = turn.coalescer.flush()
            if pending:
                step = self._speaker.speak(turn, pending)
                if step != Step.OK:
                    return self._stop(turn, _RoundResult(step))
            said = turn.spoken.close_round()
            turn.tool_round_text = said
            turn.needs_space = bool(said.strip()) and not said[-1].isspace()
            call_record = TurnRecord(
                key=turn.take_key(),
                role="assistant",
                text=said,
                tool_calls=result.tool_calls,
                first_phrase_ms=self._speaker.waited_ms(turn) if turn.first_post_at is not None else None,
            )
            results = self._run_tools(turn, result.tool_calls, said_something=bool(said.strip()))
            tool_records = [
                TurnRecord(key=turn.take_key(), role="tool", text=r.content, tool_call_id=c.id, tool_name=c.name)
                for c, r in results
            ]
            self._speaker.persist(turn, [call_record, *tool_records])
            messages.append(ChatMessage(role="assistant", content=said, tool_calls=result.tool_calls))
            messages.extend(ChatMessage(role="tool", content=r.content, tool_call_id=c.id) for c, r in results)
            outcome = self._apply_effects(turn, [e for _, r in results for e in r.effects])
            if outcome is not None:
                return outcome
        return self._finish(turn)  # unreachable in practice: the last round offers no tools

    def _stream_round(
        self, turn: Turn, request: ChatRequest, persist: Sequence[TurnRecord], pump: ModelPump | None = None
    ) -> _RoundResult:
        if pump is None:
            try:
                pump = self.start_model(request)
            except LLMError as exc:
                return _RoundResult(Step.LLM_ERROR, detail=str(exc))
        self._persist_while_the_model_thinks(turn, pump, persist)
        token_deadline = self._clock.monotonic() + self._agent.llm_first_token_timeout_s
        try:
            while True:
                now = self._clock.monotonic()
                wake = min(turn.budget.deadline, token_deadline, turn.coalescer.deadline() or token_deadline)
                event = pump.next_event(wake - now)
                if isinstance(event, StreamFailed):
                    return _RoundResult(Step.LLM_ERROR, detail=type(event.error).__name__)
                if isinstance(event, StreamFinished):
                    return _RoundResult(Step.FINISHED, tool_calls=event.tool_calls)
                now = self._clock.monotonic()
                if now >= turn.budget.deadline:  # also after slow posts: tokens waited meanwhile
                    return _RoundResult(Step.BUDGET)
                if event is None and now >= token_deadline:
                    return _RoundResult(Step.LLM_ERROR, detail="timeout")
                if event is not None:
                    token_deadline = now + self._agent.llm_token_gap_timeout_s
                step = self._speak_ready(turn, event, now)
                if step != Step.OK:
                    return _RoundResult(step)
        finally:
            pump.cancel()

    def _speak_ready(self, turn: Turn, delta: TextDelta | None, now: float) -> Step:
        """Post the phrases that are ready: after a token, or when a phrase's time window ran out."""
        phrases = turn.coalescer.poll(now) if delta is None else turn.coalescer.feed(delta.text, now)
        for phrase in phrases:
            step = self._speaker.speak(turn, phrase)
            if step != Step.OK:
                return step
        return Step.OK

    def _persist_while_the_model_thinks(self, turn: Turn, pump: ModelPump, records: Sequence[TurnRecord]) -> None:
        """Costs the caller nothing once the request is out: building it is CPU work a store
        write beside it would slow down (bounded: some servers send headers only with the first
        token)."""
        if records:
            pump.wait_opened(_OPEN_WAIT_S)
            self._speaker.persist(turn, records)

    # -- speaking -------------------------------------------------------------------------------

    def _beside(self, fn: Callable[..., _R], *args: object) -> Future[_R]:
        """Run a store request on a helper thread, with this invocation's log keys."""
        return self._store_pool.submit(contextvars.copy_context().run, fn, *args)

    def _finish(self, turn: Turn) -> TurnOutcome:
        """The model is done: the rest of the text goes out with ``last: true``."""
        rest = turn.coalescer.flush() or ""
        ticket = turn.ticket
        # Kept before ``last`` goes out (the caller's next prompt cannot come sooner), dropped again
        # if the closing frame's claim fails (something took a generation: the guess would be stale).
        if self._keep_history:
            turn.on_reply_stored = lambda: self._history.keep(
                ticket, turn.read, turn.written, self._agent.max_history_items
            )
        step = self._speaker.speak(turn, rest, last=True, store_reply=True)
        if step not in (Step.OK, Step.LIMIT):
            self._history.forget(ticket.connection_id)
        if step == Step.REFUSED:
            return self._stop(turn, _RoundResult(Step.REFUSED))
        if step not in (Step.OK, Step.LIMIT):  # LIMIT: ``last`` went out with the truncated text
            return self._stop(turn, _RoundResult(step))
        self._speaker.persist_reply(turn)
        self._after_last(turn)
        return self._outcome(turn, TurnStatus.COMPLETED)

    def _after_last(self, turn: Turn) -> None:
        """The reply's ``last`` is out: silence counts from when its words have played."""
        if self._timers is None:
            return
        self._timers.after_speech(
            turn.ticket.call_sid,
            turn.ticket.connection_id,
            turn.ticket.generation,
            language=turn.ticket.language,
            still_playing_s=self._still_playing(turn),
            agent=_answering(turn.ticket),
        )

    def _still_playing(self, turn: Turn) -> float:
        if turn.first_post_at is None:
            return 0.0
        return turn.first_post_at + playback_s(turn.spoken.words) - self._clock.monotonic()

    def _stop(self, turn: Turn, result: _RoundResult) -> TurnOutcome:
        """End the turn on a step that is not ``OK``, as ``STOPS`` says: its closing line, if any."""
        stop = STOPS[result.step]
        closed = Step.STALE
        if stop.closes_reply:
            closed = self._speaker.post(turn, Text("", last=True))
        if stop.closing_line is not None:
            lead = " " if turn.spoken_this_round().strip() else ""
            closed = self._speaker.post(turn, Text(lead + getattr(self._agent.lines, stop.closing_line), last=True))
        self._speaker.persist_reply(turn)
        if closed == Step.OK:
            self._after_last(turn)
        return self._outcome(turn, stop.status, result.detail)

    # -- tools ----------------------------------------------------------------------------------

    def _run_tools(
        self, turn: Turn, calls: tuple[ToolCall, ...], *, said_something: bool
    ) -> list[tuple[ToolCall, ToolResult]]:
        ctx = ToolContext(
            call_sid=turn.ticket.call_sid,
            connection_id=turn.ticket.connection_id,
            direction=turn.ticket.direction,
            language=turn.ticket.language,
            agent=self._agent,
            call=None if turn.ticket.context is None else turn.ticket.context.with_language(turn.ticket.language),
        )
        offered = {t.name for t in self._tools.offered(self._agent, turn.ticket.direction)}
        turn.tool_calls += len(calls)
        deadline = min(self._clock.monotonic() + self._agent.tool_timeout_s, turn.budget.deadline - 2.0)

        def filler() -> None:
            self._speaker.post(turn, Text(self._agent.lines.filler + " ", preemptible=True))

        return self._runner.run(calls, ctx, offered, deadline=deadline, filler=None if said_something else filler)

    def _apply_effects(self, turn: Turn, effects: list[Effect]) -> TurnOutcome | None:
        """Effects that end the turn first (the session ends, keys are collected); then each
        message an effect sends, in order, claimed (``core/effects.py``)."""
        for effect in effects:
            if isinstance(effect, EndSession):
                return self._end_session(turn, effect)
        for effect in effects:
            if isinstance(effect, StartKeyEntry):
                return self._start_key_entry(turn, effect)
        for effect in effects:
            message = message_for(effect, self._agent)
            if message is None:
                continue
            step = self._speaker.post(turn, message)
            if step != Step.OK:
                return self._stop(turn, _RoundResult(step))
            if isinstance(effect, SwitchLanguage):
                self._remember_language(turn, effect.code)
        return None

    def _start_key_entry(self, turn: Turn, entry: StartKeyEntry) -> TurnOutcome:
        """Say the line that asks for the keys and end the turn: the keys arrive as the caller's
        next message (``core/key_entry.py``), and no model round runs until they have."""
        try:
            if not self._store.start_key_entry(turn.ticket, entry.count):
                return self._stop(turn, _RoundResult(Step.STALE))
        except StoreUnavailableError:
            self._speaker.post(turn, Text(self._agent.lines.apology, last=True), claim=False)
            return self._outcome(turn, TurnStatus.STORE_ERROR, "key_entry")
        lead = " " if turn.posts and entry.line[:1] != " " else ""
        step = self._speaker.speak(turn, lead + entry.line, last=True, store_reply=True)
        if step not in (Step.OK, Step.LIMIT):
            return self._stop(turn, _RoundResult(step))
        self._speaker.persist_reply(turn)
        if self._timers is not None:
            ticket = turn.ticket
            self._timers.key_pause(
                ticket.call_sid,
                ticket.connection_id,
                ticket.generation,
                entry=ticket.generation,
                reprompts=0,
                language=ticket.language,
                still_playing_s=self._still_playing(turn),
                agent=_answering(ticket),
            )
        logger.info("key entry started", extra={"count": entry.count})
        return self._outcome(turn, TurnStatus.COMPLETED, "key_entry")

    def _remember_language(self, turn: Turn, code: str) -> None:
        quietly(lambda: self._store.set_language(turn.ticket, code))

    def _end_session(self, turn: Turn, end: EndSession) -> TurnOutcome:
        return self._ender.end(turn, end)

    # -- helpers --------------------------------------------------------------------------------

    def _since(self, started: float) -> float:
        return self._clock.monotonic() - started

    def _outcome(self, turn: Turn, status: TurnStatus, detail: str | None = None) -> TurnOutcome:
        return TurnOutcome(
            status=status,
            call_sid=turn.ticket.call_sid,
            generation=turn.ticket.generation,
            posts=turn.posts,
            time_to_first_phrase_s=None if turn.first_post_at is None else turn.first_post_at - turn.started,
            duration_s=self._since(turn.started),
            tool_calls=turn.tool_calls,
            detail=detail,
        )
