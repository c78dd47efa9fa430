"""ConversationRelay as Twilio ships it in late 2026, through the local stack with the simulated
caller playing Twilio's side: application reconnect (with a setup of the same session, of a new
one, or none; with replayed events), API Gateway's idle cut passing unnoticed, speech-provider
failover and /action's recovery by error code, speaker events ending the session, languages."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from local.caller.phone import RelaySession, Reply
from local.caller.reopen import ReconnectSetup
from local.caller.speech import CallSpeech, Kind, Outage
from local.openai_server import Reply as ModelReply
from local.openai_server import ToolCallReply, split_tokens
from local.stack import LocalStack
from tests.e2e.conftest import run, turn_items
from tests.reliability.conftest import AUTH_TOKEN, ErrorFrames
from tests.support.local_calls import RoutingBrain, captured_logs, last_user_text, place_call, say, say_until
from voice_agent.agent.config import AGENT

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LONG = " ".join(["The store has a garden centre, a tool library and a cafe by the entrance."] * 5)
NOTE = "line dropped"  # words of Lines.resume_note: the owed turn's request carries them


def greetings(dynamodb: DynamoDBClient, stack: LocalStack, call_sid: str) -> list[str]:
    items = turn_items(dynamodb, stack.options.table_name, call_sid)
    return [i["text"]["S"] for i in items if i["sk"]["S"].split("#")[2] == "000000" and "text" in i]


@pytest.mark.parametrize("setup", ["same-session", "new-session", "none"])
def test_an_application_reconnect_answers_the_cut_turn_on_the_new_socket(
    stack: LocalStack, brain: RoutingBrain, dynamodb: DynamoDBClient, error_frames: ErrorFrames, setup: ReconnectSetup
) -> None:
    assert stack.urls.voice is not None
    marker = f"heron{setup.replace('-', '')}"
    brain.script(marker, ModelReply(tokens=split_tokens(LONG), token_interval_s=0.04))
    brain.script(NOTE, f"Back again: the {marker} answer is that we open at nine.")
    heard: dict[str, Reply] = {}
    sockets: dict[str, int] = {}

    async def program(session: RelaySession) -> None:
        reply = await say_until(session, f"{marker} here: tell me everything about the store", chars=30)
        await session.drop(app_reachable=True)  # the network blips; Twilio reopens the socket itself
        assert await session.wait_reconnected(10)
        await session.wait(reply, 20)
        heard["cut"] = reply
        heard["next"] = await say(session, "When are you open on Sunday?")
        sockets["reopened"] = session.app_reconnects

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program, reconnect_setup=setup), timeout_s=60)
    result = call.result
    assert result.reconnects == 0, call.explain()  # no /action: the caller never noticed
    assert sockets["reopened"] == 1
    assert heard["cut"].completed and "open at nine" in heard["cut"].text, call.explain()  # not repeated
    assert heard["next"].completed and heard["next"].text
    owed = [r for r in brain.requests_with(marker) if NOTE in last_user_text(r)]
    assert len(owed) == 1 and marker in str(owed[0]["messages"])  # the question reached the owed turn
    assert greetings(dynamodb, stack, result.call_sid) == [AGENT.lines.welcome_greeting]  # none spoken again
    assert not result.protocol_errors and error_frames.new == 0


def test_a_replayed_prompt_is_answered_once_and_what_was_said_during_the_drop_is_answered(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None
    brain.script("osprey", ModelReply(tokens=split_tokens(LONG), token_interval_s=0.04))
    brain.script(NOTE, "The osprey answer, once: we open at nine.")
    replies: dict[str, Reply] = {}

    async def program(session: RelaySession) -> None:
        cut = await say_until(session, "osprey question: tell me about the store", chars=30)
        await session.drop(app_reachable=True)
        # said while the socket was down: Twilio holds it and replays it on the new socket
        replies["during"] = await session.prompt("When are you open on Sunday?")
        assert await session.wait_reconnected(10)
        await session.wait(replies["during"], 20)
        await session.wait(cut, 5)
        replies["cut"] = cut

    # No setup on the new socket, and the last frame before the drop sent again (at-least-once).
    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program, reconnect_setup="none", replay_last=1), timeout_s=60)
    asked = [r for r in list(brain.requests) if "osprey" in last_user_text(r)]
    assert len(asked) == 1, call.explain()  # the replayed question was not answered a second time
    assert replies["during"].completed and replies["during"].text, call.explain()
    assert call.result.reconnects == 0 and error_frames.new == 0


def test_api_gateways_idle_cut_passes_unnoticed(stack: LocalStack, error_frames: ErrorFrames) -> None:
    assert stack.urls.voice is not None and stack.gateway is not None
    gateway, idle = stack.gateway, stack.gateway.idle_timeout_s
    gateway.idle_timeout_s = 1.0  # API Gateway's 10 minutes, scaled
    sockets: dict[str, int] = {}

    async def program(session: RelaySession) -> None:
        first = await say(session, "When are you open on Sunday?")
        assert first.completed
        await asyncio.sleep(1.6)  # silence: API Gateway closes the idle socket; Twilio reopens it
        assert await session.wait_reconnected(10)
        second = await say(session, "And where exactly is the store?")
        assert second.completed and second.text
        sockets["reopened"] = session.app_reconnects

    try:
        call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=60)
    finally:
        gateway.idle_timeout_s = idle
    assert sockets["reopened"] >= 1, call.explain()
    assert call.result.reconnects == 0 and error_frames.new == 0


def test_a_provider_down_at_setup_fails_over_to_the_backup_on_the_same_socket(stack: LocalStack) -> None:
    assert stack.urls.voice is not None
    speech = CallSpeech(outage=Outage(down={"Deepgram"}))
    voices: dict[str, str] = {}

    async def program(session: RelaySession) -> None:
        reply = await say(session, "When are you open on Sunday?")
        assert reply.completed
        voices["stt"] = session.speech.voice.stt_provider

    with captured_logs() as logs:
        call = run(place_call(stack.urls.voice, AUTH_TOKEN, program, speech=speech), timeout_s=60)
    assert voices["stt"] == "Google" and call.result.reconnects == 0, call.explain()
    updates = [r for r in logs.records() if r.get("message") == "configuration updated by Twilio"]
    assert updates and updates[0]["transcription_provider"] == "Google"


@pytest.mark.parametrize("kind", ["stt", "tts"])
def test_a_provider_that_fails_again_after_failover_resumes_on_its_backup_through_action(
    stack: LocalStack, kind: Kind, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None
    speech = CallSpeech()
    resumed: dict[str, RelaySession] = {}

    async def first(session: RelaySession) -> None:
        assert (await say(session, "When are you open on Sunday?")).completed
        await session.provider_fails(kind)  # <Failover>: the backup takes over (once per call)
        assert not session.ended.is_set()
        await session.provider_fails(kind)  # the backup fails too: the session ends
        assert session.end is not None and session.end.status == "failed"
        speech.outage.down.clear()  # the providers recover before /action's new session starts

    async def second(session: RelaySession) -> None:
        resumed["session"] = session
        assert (await say(session, "And where exactly is the store?")).completed

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, first, second, speech=speech), timeout_s=60)
    assert call.result.reconnects == 1, call.explain()
    cut = call.result.sessions[0].end
    assert cut is not None
    attributes = resumed["session"].relay.attributes
    backups = AGENT.languages[0].backups
    if kind == "stt":
        assert cut.error_code == "64114"
        assert backups.stt is not None and attributes["transcriptionProvider"] == backups.stt.provider
    else:
        assert not cut.error_code and "TTS" in (cut.error_message or "")  # no code: recognised by its message
        assert backups.tts is not None and attributes["ttsProvider"] == backups.tts.provider
    assert error_frames.new == 0


def test_a_failover_element_twilio_refuses_resumes_on_a_known_good_configuration(stack: LocalStack) -> None:
    assert stack.urls.voice is not None
    speech = CallSpeech(outage=Outage(failover_shapes=frozenset({"relay"})))  # <Failover> inside <Language>: 64101

    async def program(session: RelaySession) -> None:
        assert (await say(session, "When are you open on Sunday?")).completed

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program, speech=speech), timeout_s=60)
    first, second = call.result.sessions
    assert first.end is not None and first.end.error_code == "64101", call.explain()
    assert second.relay.failovers == {} and second.relay.listed("debug") == ()
    assert second.replies and second.replies[-1].completed


def test_a_configuration_refused_twice_goes_to_a_person_not_round_a_loop(stack: LocalStack) -> None:
    assert stack.urls.voice is not None
    speech = CallSpeech(outage=Outage(unavailable_voices={AGENT.voice}))
    call = run(place_call(stack.urls.voice, AUTH_TOKEN, speech=speech), timeout_s=60)
    assert call.result.outcome == "transferred", call.explain()
    assert [s.end.error_code for s in call.result.sessions if s.end] == ["64101", "64101"]


@pytest.mark.parametrize("words_per_s", [8.0, 1.5])
def test_the_session_ends_when_the_agent_has_spoken_its_last_line(stack: LocalStack, words_per_s: float) -> None:
    """Faster than the 2.5-words-a-second estimate, ``end`` comes soon after the last word instead
    of after the estimate; slower, it still waits for the last word (the estimate would cut it)."""
    assert stack.urls.voice is not None
    ended: dict[str, RelaySession] = {}

    async def program(session: RelaySession) -> None:
        ended["session"] = session
        reply = await session.dtmf("0")  # the human key: the handoff line, then end
        assert reply is not None
        await session.wait_ended(20)
        ended["reply"] = reply  # type: ignore[assignment]

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program, speech=CallSpeech(words_per_s=words_per_s)))
    session = ended["session"]
    assert call.result.outcome == "transferred", call.explain()
    assert not session.end_cut_speech  # the line was spoken to its end before the session ended
    reply = session.replies[-1]
    offs = session.speech.playback.offs
    assert offs and reply.last_at is not None and reply.first_text_at is not None
    assert reply.last_at - offs[-1] < 1.0  # end followed the last word, not a timer
    if words_per_s > 2.5:
        estimate = len(AGENT.lines.handoff.split()) / 2.5
        assert reply.last_at - reply.first_text_at < estimate  # sooner than the estimate


def test_a_language_switch_carries_into_prompts_the_model_and_the_resumed_call(
    stack: LocalStack, brain: RoutingBrain
) -> None:
    assert stack.urls.voice is not None
    brain.script("espanol", ModelReply(tool_calls=[ToolCallReply("switch_language", {"language": "es-ES"})]), "Claro.")
    brain.script(
        "persona", ModelReply(tool_calls=[ToolCallReply("transfer_to_human", {"reason": "pidió una persona"})])
    )
    seen: dict[str, RelaySession] = {}

    async def first(session: RelaySession) -> None:
        assert (await say(session, "espanol, por favor")).completed
        assert session.speech.language == "es-ES"
        assert (await say(session, "¿Abren el domingo?")).completed
        await session.drop()  # the app cannot be reached: /action resumes the call

    async def second(session: RelaySession) -> None:
        seen["resumed"] = session
        await say(session, "quiero hablar con una persona")
        await session.wait_ended(20)

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, first, second), timeout_s=60)
    sunday = [r for r in list(brain.requests) if "domingo" in last_user_text(r)]
    assert sunday and AGENT.lines.language_note.format(lang="es-ES") in sunday[-1]["messages"][0]["content"]
    resumed = seen["resumed"]
    assert resumed.relay.attributes["language"] == "es-ES" and resumed.speech.language == "es-ES"
    spanish = AGENT.languages[1].lines
    assert spanish is not None
    assert any(spanish.transfer_announcement in line for line in call.transcript), call.explain()
