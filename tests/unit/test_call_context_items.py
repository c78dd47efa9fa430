"""The call context as the connection item carries it: written by setup, read by start_turn."""

from __future__ import annotations

from voice_agent.adapters.dynamo_context import context_attribute, context_from
from voice_agent.protocol.inbound import Setup

CALL_ITEM = {
    "fromNumber": {"S": "+15555550123"},
    "toNumber": {"S": "+15555550188"},
    "customParameters": {"M": {"campaign": {"S": "spring"}, "agent": {"S": "sales"}}},
    "hookResult": {"M": {"caller_name": {"S": "Sam Rivera"}}},
}


def test_a_setup_writes_what_every_turn_reads_back() -> None:
    setup = Setup(
        session_id="VX1",
        call_sid="CA1",
        from_number="+15555550123",
        to_number="+15555550188",
        direction="inbound",
        custom_parameters={"campaign": "spring", "agent": "sales", "callToken": "secret"},
    )
    item = {"callSid": {"S": "CA1"}, "direction": {"S": "inbound"}, **context_attribute(setup, CALL_ITEM)}
    context = context_from(item)
    assert context is not None
    assert (context.agent, context.caller, context.called) == ("sales", "+15555550123", "+15555550188")
    assert dict(context.parameters) == {"campaign": "spring"}  # no token, no agent parameter
    assert dict(context.hook) == {"caller_name": "Sam Rivera"}  # a resumed socket keeps the hook's result


def test_a_setup_without_numbers_takes_the_calls() -> None:
    bare = Setup(session_id="VX2", call_sid="CA1")
    context = context_from({"callSid": {"S": "CA1"}, **context_attribute(bare, CALL_ITEM)})
    assert context is not None
    assert (context.agent, context.caller, dict(context.parameters)) == (
        "sales",
        "+15555550123",
        {"campaign": "spring"},
    )


def test_a_connection_bound_before_contexts_has_none() -> None:
    assert context_from({"callSid": {"S": "CA1"}}) is None
