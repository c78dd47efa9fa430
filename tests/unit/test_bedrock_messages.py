"""Every history this project can produce maps to a request Bedrock's ConverseStream accepts.

Examples for each rule of ``adapters/bedrock_messages.py``, then two properties: any sequence of
stored turn items (through ``assemble_history``, as a turn builds its request), and any sequence
of chat messages at all, map to a request the stand-in's rules (``local/bedrock_rules.py``, what
the real service refuses) accept, with caller speech only in the user role.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.bedrock_rules import violation
from voice_agent.adapters.bedrock_messages import CALL_START_NOTE, CONTINUE_NOTE, converse_arguments
from voice_agent.core.history import assemble_history
from voice_agent.core.model import (
    INTERRUPTION_PART,
    ChatMessage,
    ChatRequest,
    ToolCall,
    ToolSpec,
    TurnKey,
    TurnRecord,
)

MODEL = "us.amazon.nova-lite-v1:0"
SYSTEM = ChatMessage("system", "You are Ada, the voice of Example Hardware.")
TOOLS = (
    ToolSpec("lookup_order", "Look up an order.", {"type": "object", "properties": {"order_id": {"type": "string"}}}),
    ToolSpec("end_call", "End the call.", {"type": "object", "properties": {}}),
)


def request(*messages: ChatMessage, tools: tuple[ToolSpec, ...] = TOOLS, **kw: Any) -> dict[str, Any]:
    return converse_arguments(MODEL, ChatRequest(messages=(SYSTEM, *messages), tools=tools, **kw))


def accepted(arguments: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in arguments.items() if k != "modelId"}
    problem = violation(arguments["modelId"], body)
    assert problem is None, f"{problem}\n{json.dumps(body, indent=1)}"
    return arguments


def shape(arguments: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(role, [block kind or text]) per message, to read expectations at a glance."""
    out = []
    for m in arguments["messages"]:
        out.append((m["role"], [b["text"] if "text" in b else next(iter(b)) for b in m["content"]]))
    return out


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def agent(text: str, *calls: ToolCall) -> ChatMessage:
    return ChatMessage("assistant", text, tool_calls=calls)


def tool(call_id: str, content: str = '{"found": "yes"}') -> ChatMessage:
    return ChatMessage("tool", content, tool_call_id=call_id)


LOOKUP = ToolCall("call_1", "lookup_order", '{"order_id": "1001"}')


# -- the rules, one by one -------------------------------------------------------------------------


def test_the_system_prompt_goes_to_system_and_nowhere_else() -> None:
    a = accepted(request(user("Hi")))
    assert a["system"] == [{"text": SYSTEM.content}]
    assert SYSTEM.content not in json.dumps(a["messages"])


def test_a_greeting_spoken_first_gets_a_note_in_the_user_role_before_it() -> None:
    a = accepted(request(agent("Hi, this is Ada."), user("When are you open?")))
    assert shape(a) == [
        ("user", [CALL_START_NOTE]),
        ("assistant", ["Hi, this is Ada."]),
        ("user", ["When are you open?"]),
    ]


def test_a_turn_superseded_before_it_spoke_merges_with_the_next() -> None:
    a = accepted(request(user("When are you open?"), user("Actually, where are you?")))
    assert shape(a) == [("user", ["When are you open?\n\nActually, where are you?"])]


def test_a_reconnect_greeting_merges_with_the_agents_last_words() -> None:
    a = accepted(request(user("Hi"), agent("Hello!"), agent("Sorry, we were cut off."), user("No problem")))
    assert shape(a)[1] == ("assistant", ["Hello!\n\nSorry, we were cut off."])


def test_blank_and_whitespace_text_is_dropped_with_the_messages_it_empties() -> None:
    a = accepted(request(user("Hi"), agent("   "), user("\n\t"), agent(""), user("Hello?")))
    assert shape(a) == [("user", ["Hi\n\nHello?"])]


def test_a_tool_call_and_its_result_travel_as_tool_use_and_tool_result() -> None:
    a = accepted(request(user("Order 1001?"), agent("Let me look.", LOOKUP), tool("call_1")))
    assert shape(a) == [
        ("user", ["Order 1001?"]),
        ("assistant", ["Let me look.", "toolUse"]),
        ("user", ["toolResult"]),
    ]
    use = a["messages"][1]["content"][1]["toolUse"]
    assert use == {"toolUseId": "call_1", "name": "lookup_order", "input": {"order_id": "1001"}}
    assert a["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": "call_1",
        "content": [{"text": '{"found": "yes"}'}],
    }
    assert a["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup_order"


def test_tool_results_come_first_when_the_caller_speaks_after_an_interrupted_tool_turn() -> None:
    # An interrupt during a tool turn keeps the call and its result but no spoken text.
    a = accepted(request(user("Order 1001?"), agent("", LOOKUP), tool("call_1"), user("Hello?")))
    assert shape(a)[-1] == ("user", ["toolResult", "Hello?"])


def test_unanswered_calls_and_orphan_results_are_dropped() -> None:
    dangling = ToolCall("call_2", "end_call", "{}")
    a = accepted(request(user("Hi"), agent("One moment.", LOOKUP, dangling), tool("call_1"), tool("zzz"), user("ok")))
    uses = [b["toolUse"]["toolUseId"] for m in a["messages"] for b in m["content"] if "toolUse" in b]
    results = [b["toolResult"]["toolUseId"] for m in a["messages"] for b in m["content"] if "toolResult" in b]
    assert uses == results == ["call_1"]
    a = accepted(request(user("Hi"), tool("call_1"), user("ok")))
    assert "toolResult" not in json.dumps(a)


def test_tool_ids_and_names_fit_bedrocks_patterns_and_ids_are_never_reused() -> None:
    odd = ToolCall("call 1/ü", "lookup order", "not json")
    a = accepted(
        request(
            user("a"),
            agent("", odd),
            tool("call 1/ü"),
            user("b"),
            agent("", LOOKUP),
            tool("call_1"),
            user("c"),
            agent("", LOOKUP),  # an id another model gave again in a later turn
            tool("call_1"),
            user("d"),
        )
    )
    uses = [b["toolUse"] for m in a["messages"] for b in m["content"] if "toolUse" in b]
    assert uses[0]["name"] == "lookup_order" and uses[0]["input"] == {}
    assert len({u["toolUseId"] for u in uses}) == 3


def test_without_tools_offered_tool_exchanges_become_notes_in_the_user_role() -> None:
    # The turn engine's last tool round offers no tools; the service refuses tool blocks then.
    a = accepted(request(user("Order 1001?"), agent("Let me look.", LOOKUP), tool("call_1"), tools=()))
    assert "toolConfig" not in a
    assert "toolUse" not in json.dumps(a) and "toolResult" not in json.dumps(a)
    assert shape(a) == [
        ("user", ["Order 1001?"]),
        ("assistant", ["Let me look."]),
        ("user", ['(The tool lookup_order was called with {"order_id":"1001"} and returned: {"found": "yes"})']),
    ]


def test_a_conversation_that_would_end_with_the_agent_gets_a_note_after_it() -> None:
    a = accepted(request(user("Hi"), agent("Hello!")))
    assert shape(a)[-1] == ("user", [CONTINUE_NOTE])


def test_inference_settings_fit_bedrocks_ranges() -> None:
    a = accepted(request(user("Hi"), max_tokens=300, temperature=1.7))
    assert a["inferenceConfig"] == {"maxTokens": 300, "temperature": 1.0}
    assert "inferenceConfig" not in request(user("Hi"))


# -- the properties ---------------------------------------------------------------------------------

texts = st.sampled_from(["", " ", "\n\t ", "\u00a0", "Hi", "When are you open?", "Let me check.", "1001"]) | st.text(
    max_size=12
)
call_ids = st.sampled_from(["call_1", "call_2", "tooluse_abc", "", "call 1", "ü", "x" * 80, "a.b:c"])
tool_calls = st.builds(
    ToolCall,
    id=call_ids,
    name=st.sampled_from(["lookup_order", "end_call", "lookup order", "", "9lives"]),
    arguments=st.sampled_from(['{"order_id": "1001"}', "{}", "", "not json", "[1, 2]", "null"]),
)


@st.composite
def turn_records(draw: st.DrawFn) -> TurnRecord:
    """One stored item of any kind, anywhere."""
    role = draw(st.sampled_from(["user", "assistant", "assistant", "tool", "interruption"]))
    conn = draw(st.integers(1, 3))
    gen = draw(st.integers(0, 5))
    if role == "interruption":
        return TurnRecord(key=TurnKey(conn, gen, INTERRUPTION_PART), role="interruption", heard=draw(texts))
    part = 0 if role == "user" else draw(st.integers(1, 6))
    if role == "tool":
        return TurnRecord(
            key=TurnKey(conn, gen, part),
            role="tool",
            text=draw(texts),
            tool_call_id=draw(call_ids),
            tool_name="lookup_order",
        )
    calls = tuple(draw(st.lists(tool_calls, max_size=3))) if role == "assistant" else ()
    return TurnRecord(key=TurnKey(conn, gen, part), role=role, text=draw(texts), tool_calls=calls)  # type: ignore[arg-type]


@st.composite
def stored_turns(draw: st.DrawFn) -> list[TurnRecord]:
    """One turn as the engine stores it: the caller's words, tool rounds (each call answered or
    not), the reply, maybe an interruption marker; or the greeting of a (re)connection."""
    conn, gen = draw(st.integers(1, 3)), draw(st.integers(0, 6))
    if gen == 0:
        return [TurnRecord(key=TurnKey(conn, 0, 1), role="assistant", text=draw(texts))]
    records = [TurnRecord(key=TurnKey(conn, gen, 0), role="user", text=draw(texts))]
    part = 1
    for _ in range(draw(st.integers(0, 2))):
        calls = tuple(draw(st.lists(tool_calls, min_size=1, max_size=3)))
        records.append(TurnRecord(key=TurnKey(conn, gen, part), role="assistant", text=draw(texts), tool_calls=calls))
        part += 1
        for call in draw(st.lists(st.sampled_from(calls), max_size=len(calls))):
            records.append(
                TurnRecord(key=TurnKey(conn, gen, part), role="tool", text=draw(texts), tool_call_id=call.id)
            )
            part += 1
    if draw(st.booleans()):
        records.append(TurnRecord(key=TurnKey(conn, gen, part), role="assistant", text=draw(texts)))
    if draw(st.booleans()):
        records.append(TurnRecord(key=TurnKey(conn, gen, INTERRUPTION_PART), role="interruption", heard=draw(texts)))
    return records


histories = st.lists(stored_turns() | turn_records().map(lambda r: [r]), max_size=12).map(
    lambda turns: [r for turn in turns for r in turn]
)


def assert_caller_speech_only_in_the_user_role(messages: list[ChatMessage], arguments: dict[str, Any]) -> None:
    user_text = "\n".join(b.get("text", "") for m in arguments["messages"] if m["role"] == "user" for b in m["content"])
    for message in messages:
        if message.role == "user" and message.content.strip():
            assert message.content in user_text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, texts, st.booleans())
def test_any_stored_history_maps_to_a_request_bedrock_accepts(
    records: list[TurnRecord], prompt: str, offer_tools: bool
) -> None:
    """As a turn builds its request: the stored items through assemble_history, then the prompt."""
    history = assemble_history(records)
    messages = [SYSTEM, *history, user(prompt)]
    arguments = accepted(
        converse_arguments(MODEL, ChatRequest(messages=messages, tools=TOOLS if offer_tools else (), max_tokens=300))
    )
    assert_caller_speech_only_in_the_user_role(messages, arguments)


single_messages = st.one_of(
    st.builds(ChatMessage, role=st.just("user"), content=texts),
    st.builds(ChatMessage, role=st.just("system"), content=texts),
    st.builds(
        ChatMessage, role=st.just("assistant"), content=texts, tool_calls=st.lists(tool_calls, max_size=3).map(tuple)
    ),
    st.builds(ChatMessage, role=st.just("tool"), content=texts, tool_call_id=call_ids | st.none()),
).map(lambda m: [m])


@st.composite
def exchanges(draw: st.DrawFn) -> list[ChatMessage]:
    """A tool call and the results after it (some calls answered, some twice, some results stray)."""
    calls = tuple(draw(st.lists(tool_calls, min_size=1, max_size=3)))
    answered = draw(st.lists(st.sampled_from([c.id for c in calls]) | call_ids, max_size=4))
    return [agent(draw(texts), *calls), *(tool(call_id, draw(texts)) for call_id in answered)]


chat_messages = st.lists(single_messages | exchanges(), max_size=12).map(lambda parts: [m for p in parts for m in p])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_messages, st.booleans(), st.floats(0, 2) | st.none())
def test_any_sequence_of_messages_at_all_maps_to_a_request_bedrock_accepts(
    messages: list[ChatMessage], offer_tools: bool, temperature: float | None
) -> None:
    request = ChatRequest(messages=messages, tools=TOOLS if offer_tools else (), temperature=temperature)
    arguments = accepted(converse_arguments(MODEL, request))
    assert_caller_speech_only_in_the_user_role(messages, arguments)
