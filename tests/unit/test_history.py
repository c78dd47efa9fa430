from __future__ import annotations

from voice_agent.core.history import assemble_history, unanswered_missing, with_reply_on_air
from voice_agent.core.model import INTERRUPTION_PART, ChatMessage, OnAir, ToolCall, TurnKey, TurnRecord


def rec(gen: int, part: int, role: str, text: str = "", conn: int = 1, **kw: object) -> TurnRecord:
    return TurnRecord(key=TurnKey(conn, gen, part), role=role, text=text, **kw)  # type: ignore[arg-type]


def roles(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_plain_conversation_in_order_whatever_the_input_order() -> None:
    records = [
        rec(1, 1, "assistant", "It opens at nine."),
        rec(0, 1, "assistant", "Hi, how can I help?"),
        rec(1, 0, "user", "When do you open?"),
    ]
    assert roles(assemble_history(records)) == [
        ("assistant", "Hi, how can I help?"),
        ("user", "When do you open?"),
        ("assistant", "It opens at nine."),
    ]


def test_an_interrupted_reply_becomes_what_the_caller_heard() -> None:
    records = [
        rec(1, 0, "user", "Tell me about life"),
        rec(1, 1, "assistant", "Life is a complex set of processes that we do not fully understand."),
        rec(1, INTERRUPTION_PART, "interruption", heard="Life is a complex set of"),
        rec(2, 0, "user", "Stop"),
    ]
    assert roles(assemble_history(records)) == [
        ("user", "Tell me about life"),
        ("assistant", "Life is a complex set of"),
        ("user", "Stop"),
    ]


def test_an_interrupt_stored_before_the_reply_still_wins() -> None:
    # The marker's sort key orders it last within the turn, whenever it was written.
    records = [
        rec(1, INTERRUPTION_PART, "interruption", heard="Sure"),
        rec(1, 0, "user", "Hello"),
        rec(1, 1, "assistant", "Sure, I can help with anything you like."),
    ]
    assert roles(assemble_history(records))[-1] == ("assistant", "Sure")


def test_an_interrupt_before_anything_was_heard_drops_the_reply() -> None:
    records = [
        rec(1, 0, "user", "Hi"),
        rec(1, 1, "assistant", "Hello!"),
        rec(1, INTERRUPTION_PART, "interruption", heard=""),
    ]
    assert roles(assemble_history(records)) == [("user", "Hi")]


def test_dangling_tool_calls_and_orphan_results_are_dropped() -> None:
    done = ToolCall(id="a", name="lookup_order", arguments='{"order_id": "1"}')
    dangling = ToolCall(id="b", name="lookup_order", arguments='{"order_id": "2"}')
    records = [
        rec(1, 0, "user", "Where are my orders?"),
        rec(1, 1, "assistant", "", tool_calls=(done, dangling)),
        rec(1, 2, "tool", '{"found": "yes"}', tool_call_id="a", tool_name="lookup_order"),
        rec(1, 3, "tool", '{"found": "no"}', tool_call_id="zzz", tool_name="lookup_order"),
    ]
    messages = assemble_history(records)
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[1].tool_calls == (done,)
    assert messages[2].tool_call_id == "a"


def test_an_interrupt_during_a_tool_turn_leaves_no_dangling_call() -> None:
    call = ToolCall(id="a", name="lookup_order", arguments="{}")
    records = [
        rec(1, 0, "user", "Check order 1"),
        rec(1, 1, "assistant", "Let me check.", tool_calls=(call,)),
        rec(1, INTERRUPTION_PART, "interruption", heard="Let me"),
    ]
    assert roles(assemble_history(records)) == [("user", "Check order 1"), ("assistant", "Let me")]


def test_history_starts_at_a_whole_turn() -> None:
    call = ToolCall(id="a", name="x", arguments="{}")
    records = [
        rec(1, 2, "tool", "result", tool_call_id="a"),
        rec(1, 3, "assistant", "", tool_calls=(call,)),
        rec(2, 0, "user", "next"),
    ]
    assert roles(assemble_history(records)) == [("user", "next")]


def test_turns_of_a_reconnected_session_follow_the_first_connection() -> None:
    records = [
        rec(0, 1, "assistant", "Sorry, we were cut off.", conn=2),
        rec(5, 0, "user", "first connection", conn=1),
        rec(1, 0, "user", "second connection", conn=2),
    ]
    assert [m.content for m in assemble_history(records)] == [
        "first connection",
        "Sorry, we were cut off.",
        "second connection",
    ]


# -- the order things happened, the reply on the air, unanswered caller messages, repairs ----------


def test_turns_of_two_sockets_are_ordered_by_when_they_happened() -> None:
    records = [
        rec(0, 1, "assistant", "Hi.", conn=1, at_ms=1_000),
        rec(1, 0, "user", "first on the old socket", conn=1, at_ms=2_000),
        rec(0, 1, "assistant", "Welcome back.", conn=2, at_ms=3_000),
        rec(1, 0, "user", "on the new socket", conn=2, at_ms=4_000),
        rec(1, 1, "assistant", "Noted.", conn=2, at_ms=4_500),
        rec(2, 0, "user", "later on the old socket", conn=1, at_ms=5_000),
        rec(2, 1, "assistant", "Done.", conn=1, at_ms=5_500),
    ]
    assert [m.content for m in assemble_history(records) if m.role == "user"] == [
        "first on the old socket",
        "on the new socket",
        "later on the old socket",
    ]


def test_items_without_a_time_keep_their_key_order() -> None:
    records = [rec(0, 1, "assistant", "Hi.", at_ms=1_000), rec(1, 0, "user", "one"), rec(2, 0, "user", "two")]
    assert roles(assemble_history(records)) == [("assistant", "Hi."), ("user", "one two")]


def test_the_reply_on_the_air_shows_as_what_was_sent_unless_twilio_said_what_was_heard() -> None:
    records = [rec(1, 0, "user", "Tell me everything"), rec(2, 0, "user", "Stop")]
    on_air = OnAir(generation=1, text="Well, it all began")
    marked = with_reply_on_air(records, 1, on_air)
    assert roles(assemble_history(marked)) == [
        ("user", "Tell me everything"),
        ("assistant", "Well, it all began"),
        ("user", "Stop"),
    ]
    twilio = [*records, rec(1, INTERRUPTION_PART, "interruption", heard="Well,")]
    assert with_reply_on_air(twilio, 1, on_air) == twilio
    assert with_reply_on_air(records, 1, OnAir(generation=1, text="Well, it all began", done=True)) == records


def test_unanswered_caller_messages_not_stored_yet_are_found_in_order() -> None:
    stored = [rec(3, 0, "user", "yes"), rec(1, 0, "user", "old, answered")]
    earlier = ("no", "yes", "maybe")
    assert unanswered_missing(stored, 1, 2, earlier) == ["no", "maybe"]
    assert unanswered_missing(stored, 2, 2, earlier) == ["no", "yes", "maybe"]  # another socket's items


def test_lone_surrogates_stored_before_cleaning_are_repaired() -> None:
    records = [rec(1, 0, "user", "Hello \ud800 there"), rec(1, 1, "assistant", "Hi\udfff.")]
    assert roles(assemble_history(records)) == [("user", "Hello  there"), ("assistant", "Hi.")]


def test_heard_lines_are_the_history_with_when_and_what_a_transcript_shows() -> None:
    from voice_agent.core.history import heard_lines

    records = [
        rec(0, 1, "assistant", "Hi, how can I help?", at_ms=1_000),
        rec(1, 0, "user", "(The caller keyed in: 12345678)", at_ms=5_000, shown="(keyed in 8 keys)"),
        rec(1, 1, "assistant", "Thanks, that account is active and everything looks fine.", at_ms=5_600),
        rec(1, 2, "assistant", "ignored", at_ms=5_700, first_phrase_ms=420),
        rec(1, INTERRUPTION_PART, "interruption", heard="Thanks, that account", at_ms=6_000),
    ]
    lines = heard_lines(records)
    assert [(line.message.role, line.message.content) for line in lines] == [
        ("assistant", "Hi, how can I help?"),
        ("user", "(The caller keyed in: 12345678)"),  # the model reads the keys
        ("assistant", "Thanks, that account"),  # the caller heard this much
    ]
    assert [line.at_ms for line in lines] == [1_000, 5_000, 6_000]
    assert lines[1].shown == "(keyed in 8 keys)"  # the transcript shows their count
    assert lines[2].first_phrase_ms == 420 and lines[1].first_phrase_ms is None
    assert [line.message for line in lines] == assemble_history(records)
