"""Composition root: builds the production objects once per execution environment.

Entry points take their dependencies as parameters with these as defaults, so tests pass fakes
and the local stand-in runs the very same handlers. Every factory is a ``@provided`` one: built
once, forgotten all together by :func:`reset` (none can be left out), and replaceable for a test
with :func:`overrides` (as Powertools' and FastAPI's ``dependency_overrides`` do).

Imports are inside the factories: ``$connect`` must not pay for the turn engine, and nothing here
imports ``openai`` (the adapter does, lazily, and only when a model of the chain is an OpenAI one).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from voice_agent import env_names as names
from voice_agent.core.budget import Budget
from voice_agent.errors import ConfigurationError
from voice_agent.log import logger
from voice_agent.settings import load_settings

if TYPE_CHECKING:
    from voice_agent.adapters.dynamo_store import DynamoSessionStore
    from voice_agent.adapters.management_api import ManagementApiSender
    from voice_agent.agent.config import AgentConfig
    from voice_agent.core.call_record import RecordProducer
    from voice_agent.core.fallback import Fallback
    from voice_agent.core.model import TokenUsage
    from voice_agent.core.ports import ChatModel, RecordQueue, Timers
    from voice_agent.core.relay import Relay
    from voice_agent.core.routing import Agents
    from voice_agent.core.silence import TimerHandler, TimerScheduler
    from voice_agent.core.start_hook import StartOfCall
    from voice_agent.core.tools import ToolRegistry
    from voice_agent.core.turn_engine import TurnEngine
    from voice_agent.model_choice import ModelRef


T = TypeVar("T")
_UNBUILT: Any = object()


class Provided(Generic[T]):
    """One dependency: built on first use (thread-safe), then the same object until :func:`reset`."""

    def __init__(self, build: Callable[[], T]) -> None:
        functools.update_wrapper(self, build)
        self._build = build
        self._value: T = _UNBUILT
        self._lock = threading.Lock()
        _PROVIDED[build.__name__] = self

    def __call__(self) -> T:
        override = _OVERRIDES.get(self._build.__name__, _UNBUILT)
        if override is not _UNBUILT:
            return override  # type: ignore[no-any-return]
        if self._value is _UNBUILT:
            with self._lock:
                if self._value is _UNBUILT:
                    self._value = self._build()
        return self._value

    def cache_clear(self) -> None:
        with self._lock:
            self._value = _UNBUILT


_PROVIDED: dict[str, Provided[Any]] = {}
_OVERRIDES: dict[str, Any] = {}


def provided(build: Callable[[], T]) -> Provided[T]:
    return Provided(build)


@contextmanager
def overrides(**values: Any) -> Iterator[None]:
    """``with wiring.overrides(session_store=fake):`` every factory named returns that object; what
    was built from the real one is rebuilt (``reset``) on the way in and out."""
    unknown = set(values) - set(_PROVIDED)
    if unknown:
        raise KeyError(f"no such dependency: {', '.join(sorted(unknown))}")
    reset()
    _OVERRIDES.update(values)
    try:
        yield
    finally:
        for name in values:
            _OVERRIDES.pop(name, None)
        reset()


@provided
def tool_registry() -> ToolRegistry:
    from voice_agent.agent.tools import TOOLS
    from voice_agent.core.builtin_tools import BUILTIN_TOOLS
    from voice_agent.core.tools import ToolRegistry

    return ToolRegistry.of([*BUILTIN_TOOLS, *TOOLS])


@provided
def agents() -> Agents:
    """Every agent of the agents folder (``AGENTS_DIR``, else the one shipped in the package),
    validated once: a bad edit fails the cold start, listing every problem."""
    from pathlib import Path

    from voice_agent.agent.hooks import HOOKS
    from voice_agent.agent.loader import AGENTS_DIR, load_agents

    folder = load_settings().agents_dir
    return load_agents(
        Path(folder) if folder else AGENTS_DIR, known_tools=tool_registry().names, hooks=frozenset(HOOKS)
    )


@provided
def agent() -> AgentConfig:
    """The default agent: it answers every number no other agent answers."""
    return agents().default


@provided
def session_store() -> DynamoSessionStore:
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.dynamo_store import DynamoSessionStore

    return DynamoSessionStore(
        client=aws_clients.dynamodb(),
        table_name=load_settings().table_name,
        retention_days=agent().transcript_retention_days,
    )


@provided
def sender() -> ManagementApiSender:
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.management_api import ManagementApiSender

    settings = load_settings()
    endpoint = settings.require(settings.relay_callback_url, names.RELAY_CALLBACK_URL)
    return ManagementApiSender(aws_clients.management_api(endpoint))


def openai_api_key() -> str | None:
    from voice_agent.adapters.secrets import secret_value

    s = load_settings()
    return secret_value(arn=s.openai_api_key_secret_arn, plain=s.openai_api_key, name="OpenAI API key")


def twilio_auth_token() -> str | None:
    from voice_agent.adapters.secrets import secret_value

    s = load_settings()
    return secret_value(arn=s.twilio_auth_token_secret_arn, plain=s.twilio_auth_token, name="Twilio auth token")


def model_chain() -> tuple[ModelRef, ...]:
    """The models a turn tries, in order: the agent configuration's, with the environment's
    ``LLM_PROVIDER`` / ``LLM_MODEL`` in front."""
    s = load_settings()
    return agent().llm_chain(s.llm_provider_override, s.llm_model_override)


@provided
def chat_model() -> ChatModel:
    """The default agent's model: one model, or a fallback chain that answers like one."""
    return _chat_model_for(agent(), model_chain())


def agent_model(a: AgentConfig) -> Callable[[], ChatModel]:
    """An agent's model: the default agent's when the chains are the same, else its own (built once)."""
    s = load_settings()
    chain = a.llm_chain(s.llm_provider_override, s.llm_model_override)
    if chain == model_chain():
        return chat_model

    def build() -> ChatModel:
        with _AGENT_MODELS_LOCK:
            if chain not in _AGENT_MODELS:
                _AGENT_MODELS[chain] = _chat_model_for(a, chain)
            return _AGENT_MODELS[chain]

    return build


_AGENT_MODELS: dict[tuple[ModelRef, ...], ChatModel] = {}
_AGENT_MODELS_LOCK = threading.Lock()


def _chat_model_for(a: AgentConfig, chain: tuple[ModelRef, ...]) -> ChatModel:
    models = [_model(ref, a, last=i == len(chain) - 1) for i, ref in enumerate(chain)]
    if len(models) == 1:
        return models[0]
    from voice_agent.adapters.threads import start_pump
    from voice_agent.core.fallback import Candidate, FallbackChatModel

    return FallbackChatModel(
        [Candidate(str(ref), model) for ref, model in zip(chain, models, strict=True)],
        start_pump=start_pump,
        first_token_timeout_s=a.llm_fallback_after_s,
        on_fallback=_record_fallback,
    )


def _model(ref: ModelRef, a: AgentConfig, *, last: bool) -> ChatModel:
    s = load_settings()
    if ref.provider == "bedrock":
        from voice_agent.adapters.bedrock_chat import BedrockChatModel

        return BedrockChatModel(
            model=ref.model,
            connect_timeout_s=a.llm_connect_timeout_s,
            # A backstop for a silent socket: the engine's first-token and token-gap deadlines
            # are shorter and close the stream first.
            read_timeout_s=max(a.llm_first_token_timeout_s, a.llm_token_gap_timeout_s) + 1.0,
            max_attempts=2 if last else 1,  # with a fallback behind it, the next model is the retry
            on_usage=_record_usage,
        )
    from voice_agent.adapters.openai_chat import OpenAIChatModel

    return OpenAIChatModel(
        model=ref.model,
        api_key=openai_api_key,
        base_url=s.openai_base_url,
        connect_timeout_s=a.llm_connect_timeout_s,
        read_timeout_s=a.llm_token_gap_timeout_s,
        max_retries=1 if last else 0,
        warm_connection=a.warm_llm_connection,
    )


def _record_fallback(event: Fallback) -> None:
    from voice_agent import metric_names, telemetry

    logger.warning("llm fallback", extra={"failed": event.failed, "next": event.next, "reason": event.reason})
    telemetry.record_count(metric_names.LLM_FALLBACKS)


def _record_usage(model: str, usage: TokenUsage) -> None:
    from voice_agent import telemetry

    logger.info(
        "llm usage", extra={"model": model, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    )
    telemetry.record_usage(usage.input_tokens, usage.output_tokens)


_warmed = threading.Event()


def warm_model_once() -> None:
    """Import the SDK and open the model connection once per execution environment."""
    if _warmed.is_set():
        return
    _warmed.set()
    chat_model().warm()


@provided
def relay() -> Relay:
    from voice_agent.core.key_entry import KeyEntry
    from voice_agent.core.relay import Relay
    from voice_agent.core.speculation import Speculator

    # Its own engine (not turn_engine()'s): whoever rebuilds the relay rebuilds what it speaks through.
    store, out, engine, schedule = session_store(), sender(), _new_turn_engine(), timer_scheduler()

    def run_keys_turn(connection_id: str, note: str, shown: str, budget: Budget, call_sid: str) -> object:
        return engine.run_prompt(connection_id, note, budget, call_sid=call_sid, shown=shown)

    keys = KeyEntry(store=store, agent=agent(), run_turn=run_keys_turn, schedule=schedule)
    preemption = agent().preemption
    speculator = None
    if preemption.enabled:
        speculator = Speculator(store=store, engine=engine, config=preemption)
    return Relay(
        store=store,
        engine=engine,
        sender=out,
        agent=agent(),
        warm_model=warm_model_once,
        keys=keys,
        timers=schedule,
        agents=agents(),
        start_of_call=start_of_call(),
        speculator=speculator,
    )


@provided
def start_of_call() -> StartOfCall:
    from voice_agent.adapters.threads import HOOK_POOL
    from voice_agent.agent.hooks import HOOKS
    from voice_agent.core.start_hook import StartHookRunner, StartOfCall

    return StartOfCall(agents=agents(), hooks=HOOKS, runner=StartHookRunner(store=session_store(), pool=HOOK_POOL))


# -- the turn engine, timers and call records (issue "record out"; adapted on merge) -----------


@provided
def turn_engine() -> TurnEngine:
    """The timers function's engine (a key entry that ends on a timer runs one turn)."""
    return _new_turn_engine()


def _new_turn_engine() -> TurnEngine:
    """The default agent's engine; a turn of a call another agent answered runs in that agent's
    engine (its prompt, lines, tools and model), built here beside it."""
    from voice_agent.core.turn_engine import TurnEngine

    store, out, tools, timers_, directory = session_store(), sender(), tool_registry(), timer_scheduler(), agents()
    engines: dict[str, TurnEngine] = {}

    def engine_of(name: str) -> TurnEngine:
        return engines.get(name, default)

    def build(a: AgentConfig, model: Callable[[], ChatModel]) -> TurnEngine:
        return TurnEngine(store=store, sender=out, model=model, agent=a, tools=tools, timers=timers_, agents=engine_of)

    default = build(agent(), chat_model)
    for name, config in directory.by_name.items():
        engines[name] = default if name == directory.default_name else build(config, agent_model(config))
    return default


@provided
def timers() -> Timers | None:
    """The timer queue, or ``None`` where none is configured (no reminders, no time limit)."""
    url = load_settings().timer_queue_url
    if url is None:
        return None
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.queues import SqsQueue, SqsTimers

    return SqsTimers(SqsQueue(aws_clients.sqs(), url, name="timers"))


@provided
def timer_scheduler() -> TimerScheduler | None:
    queue = timers()
    if queue is None:
        return None
    from voice_agent.core.silence import TimerScheduler

    return TimerScheduler(timers=queue, agent=agent(), agents=agents())


@provided
def record_queue() -> RecordQueue | None:
    """The records queue, or ``None`` where none is configured (no call records)."""
    url = load_settings().record_queue_url
    if url is None:
        return None
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.queues import SqsQueue, SqsRecordQueue

    return SqsRecordQueue(SqsQueue(aws_clients.sqs(), url, name="records"))


@provided
def timer_handler() -> TimerHandler:
    from voice_agent import telemetry
    from voice_agent.core.silence import TimerHandler

    settings = load_settings()
    queue = timers()
    if queue is None:
        raise ConfigurationError(f"{names.TIMER_QUEUE_URL} is not set; the stack (or `make dev`) must set it")

    def run_turn(connection_id: str, note: str, shown: str, budget: Budget) -> object:
        outcome = turn_engine().run_prompt(connection_id, note, budget, shown=shown)
        telemetry.record_turn(outcome)
        return outcome

    return TimerHandler(
        store=session_store(),
        sender=sender(),
        timers=queue,
        agent=agent(),
        agents=agents(),
        records=record_queue() if settings.record_queue_url else None,
        run_turn=run_turn,
    )


@provided
def record_producer() -> RecordProducer:
    """Records to a folder locally (``LOCAL_CALL_RECORDS_DIR``), else to S3 and EventBridge."""
    from pathlib import Path

    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.record_sink import EventBridgeBus, FileEventBus, FileRecordSink, S3RecordSink
    from voice_agent.core.call_record import RecordProducer
    from voice_agent.core.ports import RecordBus, RecordSink
    from voice_agent.core.summary import CallSummarizer

    s, a = load_settings(), agent()
    sink: RecordSink
    bus: RecordBus
    if s.call_records_dir is not None:
        sink, bus = FileRecordSink(Path(s.call_records_dir)), FileEventBus(Path(s.call_records_dir))
    else:
        sink = S3RecordSink(aws_clients.s3(), s.require(s.call_records_bucket, names.CALL_RECORDS_BUCKET))
        bus = EventBridgeBus(aws_clients.events(), s.require(s.call_events_bus, names.CALL_EVENTS_BUS))

    def summarizer_for(config: AgentConfig) -> CallSummarizer | None:
        """An agent's own summary policy, asked of its own model."""
        if not config.call_record.uses_model:
            return None
        return CallSummarizer(model=agent_model(config), policy=config.call_record)

    return RecordProducer(
        store=session_store(),
        sink=sink,
        bus=bus,
        agent=a,
        summarize=summarizer_for(a),
        agents=agents(),
        summarizer_for=summarizer_for,
    )


def warn_if_unsigned() -> None:
    """Say loudly, once per process, that Twilio signatures are not being checked."""
    if not load_settings().signature_validation and not _unsigned_warned.is_set():
        _unsigned_warned.set()
        logger.warning(
            "TWILIO SIGNATURES ARE NOT CHECKED: anyone who can reach this server can talk to the agent. "
            f"Set {names.TWILIO_AUTH_TOKEN} to check them (local development only)."
        )


_unsigned_warned = threading.Event()


def reset_model() -> None:
    """Forget the model chain and the settings it was built from, keep every client (a test or
    the benchmark switching ``LLM_PROVIDER`` in a running process)."""
    load_settings.cache_clear()
    chat_model.cache_clear()
    _AGENT_MODELS.clear()
    _warmed.clear()


def reset() -> None:
    """Forget everything built (tests that change the environment): every ``@provided`` factory,
    the settings, the AWS clients and the secrets."""
    from voice_agent.adapters import aws_clients, secrets

    for factory in _PROVIDED.values():
        factory.cache_clear()
    _AGENT_MODELS.clear()
    for built in (turn_engine, timers, timer_scheduler, record_queue, timer_handler, record_producer):
        built.cache_clear()
    load_settings.cache_clear()
    aws_clients.reset_clients()
    secrets.clear_cache()
    _warmed.clear()
    _unsigned_warned.clear()
