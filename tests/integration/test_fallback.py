"""A fallback chain inside a turn: the real turn engine and store (moto), models at the port.

When a model fails before its first word, the same turn asks the next one and the caller hears a
reply, not the apology; once words are out, the turn never switches voices."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply, words
from tests.support.local_calls import captured_logs
from voice_agent import metric_names, wiring
from voice_agent.adapters.bedrock_chat import BedrockChatModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.adapters.openai_chat import OpenAIChatModel
from voice_agent.adapters.threads import start_pump
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.core.budget import Budget, SystemClock
from voice_agent.core.fallback import Candidate, Fallback, FallbackChatModel
from voice_agent.core.model import ChatMessage, ChatRequest, StreamEvent, TextDelta, ToolCall
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.errors import LLMError, LLMThrottledError, LLMUnavailableError
from voice_agent.model_choice import ModelRef
from voice_agent.protocol.inbound import Setup
from voice_agent.settings import load_settings
from voice_agent.wiring import tool_registry

CONN = "c1"
APOLOGY = AGENT.lines.apology
REPLY = "We are open from nine until six today."


class FailingModel:
    """A model that refuses every request with ``error`` (throttled, unavailable, ...)."""

    def __init__(self, error: LLMError) -> None:
        self.error = error
        self.requests = 0

    def stream(self, request: ChatRequest) -> Any:
        self.requests += 1
        raise self.error

    def warm(self) -> None:
        return


@pytest.fixture
def bound(store: DynamoSessionStore) -> DynamoSessionStore:
    store.bind_connection(CONN, Setup(session_id="VX1", call_sid="CA1", direction="inbound"))
    return store


def chain(*models: Any, after_s: float = 0.3) -> tuple[FallbackChatModel, list[Fallback]]:
    seen: list[Fallback] = []
    names = ("bedrock:us.amazon.nova-lite-v1:0", "bedrock:us.amazon.nova-micro-v1:0", "openai:gpt-4.1-mini")
    candidates = [Candidate(name, m) for name, m in zip(names, models, strict=False)]
    chain = FallbackChatModel(candidates, first_token_timeout_s=after_s, start_pump=start_pump, on_fallback=seen.append)
    return chain, seen


def turn(store: DynamoSessionStore, sender: RecordingSender, model: Any, agent: AgentConfig = AGENT) -> Any:
    engine = TurnEngine(store=store, sender=sender, model=lambda: model, agent=agent, tools=tool_registry())
    return engine.run_prompt(CONN, "When are you open?", Budget.start(SystemClock(), agent.turn_budget_s))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(LLMThrottledError("bedrock: ThrottlingException"), "throttled"), (LLMUnavailableError("down"), "unavailable")],
)
def test_a_model_that_fails_before_its_first_word_hands_the_turn_to_the_next(
    bound: DynamoSessionStore, sender: RecordingSender, failure: LLMError, reason: str
) -> None:
    primary, backup = FailingModel(failure), ScriptedModel().say(REPLY)
    model, seen = chain(primary, backup)
    outcome = turn(bound, sender, model)
    assert outcome.status == "completed"
    assert sender.spoken(CONN) == REPLY  # a reply, not the apology
    assert seen == [Fallback("bedrock:us.amazon.nova-lite-v1:0", "bedrock:us.amazon.nova-micro-v1:0", reason)]
    assert primary.requests == 1 and len(backup.requests) == 1
    assert backup.requests[0].messages[-1] == ChatMessage("user", "When are you open?")  # the same request


def test_a_model_silent_past_its_limit_is_closed_and_the_next_answers(
    bound: DynamoSessionStore, sender: RecordingSender
) -> None:
    silent = ScriptedModel(replies=[ScriptedReply(tokens=words("Too late."), first_delay_s=10)])
    backup = ScriptedModel().say(REPLY)
    model, seen = chain(silent, backup, after_s=0.3)
    started = time.monotonic()
    outcome = turn(bound, sender, model)
    assert outcome.status == "completed" and sender.spoken(CONN) == REPLY
    assert [f.reason for f in seen] == ["first_token_timeout"]
    assert silent.closed == 1  # its request was cancelled, not left to run (and bill)
    assert outcome.time_to_first_phrase_s is not None and 0.3 <= outcome.time_to_first_phrase_s < 2.0
    assert time.monotonic() - started < 3


def test_once_words_are_spoken_there_is_no_switch(bound: DynamoSessionStore, sender: RecordingSender) -> None:
    breaks = ScriptedModel(replies=[ScriptedReply(tokens=words("We are open from nine until"), error_at=4)])
    backup = ScriptedModel().say(REPLY)
    model, seen = chain(breaks, backup)
    outcome = turn(bound, sender, model)
    assert outcome.status == "llm_error"
    assert sender.spoken(CONN).endswith(APOLOGY)
    assert seen == [] and backup.requests == []  # the caller heard one voice


def test_a_tool_call_commits_the_model_too(bound: DynamoSessionStore, sender: RecordingSender) -> None:
    first = ScriptedModel(
        replies=[
            ScriptedReply(tool_calls=(ToolCall("t1", "lookup_order", '{"order_id": "1001"}'),)),
            ScriptedReply(tokens=words("Your cordless drill has shipped.")),
        ]
    )
    backup = ScriptedModel().say(REPLY)
    model, seen = chain(first, backup)
    outcome = turn(bound, sender, model)
    assert outcome.status == "completed" and outcome.tool_calls == 1
    assert "cordless drill" in sender.spoken(CONN)
    assert seen == [] and backup.requests == []


def test_when_every_model_fails_the_caller_hears_the_apology(
    bound: DynamoSessionStore, sender: RecordingSender
) -> None:
    a, b = FailingModel(LLMThrottledError("a")), FailingModel(LLMUnavailableError("b"))
    model, seen = chain(a, b)
    outcome = turn(bound, sender, model)
    assert outcome.status == "llm_error" and sender.spoken(CONN) == APOLOGY
    assert [f.reason for f in seen] == ["throttled"]  # the last model's failure is the turn's


def test_the_whole_chain_stays_inside_the_engines_first_token_deadline(
    bound: DynamoSessionStore, sender: RecordingSender
) -> None:
    agent = dataclasses.replace(AGENT, llm_first_token_timeout_s=1.0)
    silent_a = ScriptedModel(replies=[ScriptedReply(tokens=words("a"), first_delay_s=10)])
    silent_b = ScriptedModel(replies=[ScriptedReply(tokens=words("b"), first_delay_s=10)])
    model, seen = chain(silent_a, silent_b, after_s=0.3)
    del seen
    started = time.monotonic()
    outcome = turn(bound, sender, model, agent)
    took = time.monotonic() - started
    assert outcome.status == "llm_error" and sender.spoken(CONN) == APOLOGY
    assert 1.0 <= took < 2.5  # the engine's deadline, not the last model's patience
    assert silent_a.closed == 1 and silent_b.closed == 1  # both requests cancelled


def test_closing_the_chain_while_it_waits_closes_the_model_it_waits_on() -> None:
    silent = ScriptedModel(replies=[ScriptedReply(tokens=words("late"), first_delay_s=10)])
    backup = ScriptedModel().say(REPLY)
    model, seen = chain(silent, backup, after_s=5.0)
    stream = model.stream(ChatRequest(messages=(ChatMessage("user", "hi"),)))
    got: list[StreamEvent] = []
    reader = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    reader.start()
    time.sleep(0.2)
    stream.close()  # an interrupt, or the turn's budget
    reader.join(2)
    assert not reader.is_alive() and got == []
    assert silent.closed == 1 and backup.requests == [] and seen == []


def test_a_fallback_is_logged_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    with captured_logs() as logs:
        wiring._record_fallback(Fallback("bedrock:a", "openai:b", "throttled"))
    [record] = [r for r in logs.records() if r["message"] == "llm fallback"]
    assert (record["failed"], record["next"], record["reason"]) == ("bedrock:a", "openai:b", "throttled")
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get(metric_names.LLM_FALLBACKS) == [1.0] for m in metrics)


# -- wiring: the chain the configuration and the environment describe --------------------------------


@pytest.fixture
def with_agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(agent: AgentConfig) -> None:
        monkeypatch.setattr(wiring, "agent", functools.lru_cache(maxsize=1)(lambda: agent))
        wiring.chat_model.cache_clear()

    yield use
    wiring.chat_model.cache_clear()


def test_one_model_is_used_as_it_is(with_agent: Any) -> None:
    with_agent(AGENT)
    model = wiring.chat_model()
    assert isinstance(model, BedrockChatModel) and model.model == "us.amazon.nova-lite-v1:0"


def test_fallbacks_make_a_chain_in_order(with_agent: Any) -> None:
    with_agent(
        dataclasses.replace(
            AGENT, llm_fallbacks=(ModelRef("bedrock", "us.amazon.nova-micro-v1:0"), ModelRef("openai", "gpt-4.1-mini"))
        )
    )
    model = wiring.chat_model()
    assert isinstance(model, FallbackChatModel)
    assert model.names == (
        "bedrock:us.amazon.nova-lite-v1:0",
        "bedrock:us.amazon.nova-micro-v1:0",
        "openai:gpt-4.1-mini",
    )


def test_the_environment_chooses_the_first_model(monkeypatch: pytest.MonkeyPatch, with_agent: Any) -> None:
    with_agent(AGENT)
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    load_settings.cache_clear()
    model = wiring.chat_model()
    assert isinstance(model, OpenAIChatModel) and model.model == "gpt-4.1-mini"
    monkeypatch.setenv("LLM_PROVIDER", "bedrock")
    monkeypatch.setenv("LLM_MODEL", "anthropic.claude-3-5-haiku-20241022-v1:0")
    load_settings.cache_clear()
    wiring.chat_model.cache_clear()
    model = wiring.chat_model()
    assert isinstance(model, BedrockChatModel) and model.model == "anthropic.claude-3-5-haiku-20241022-v1:0"


def test_words_from_the_first_model_come_through_unchanged() -> None:
    backup = ScriptedModel().say(REPLY)
    model, _ = chain(backup, ScriptedModel())
    events = list(model.stream(ChatRequest(messages=(ChatMessage("user", "hi"),))))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY
