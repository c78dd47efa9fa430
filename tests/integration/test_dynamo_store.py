from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from tests.support.aws import TABLE
from voice_agent.adapters.dynamo_store import DynamoSessionStore, call_key, conn_key
from voice_agent.core.model import INTERRUPTION_PART, TurnKey, TurnRecord, TurnTicket
from voice_agent.core.ports import SessionStore
from voice_agent.errors import CallTokenMismatchError, ConnectionAlreadyBoundError, StoreUnavailableError
from voice_agent.protocol.inbound import Setup
from voice_agent.table_schema import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SETUP = Setup(session_id="VX1", call_sid="CA1", direction="inbound", custom_parameters={"lang": "en"})


def all_items(db: DynamoDBClient) -> list[dict[str, Any]]:
    return list(db.scan(TableName=TABLE)["Items"])


def test_setup_creates_a_call_and_a_new_connection_resumes_it(store: DynamoSessionStore) -> None:
    first = store.bind_connection("c1", SETUP)
    assert (first.call_sid, first.conn_seq, first.resumed) == ("CA1", 1, False)
    second = store.bind_connection("c2", Setup(session_id="VX2", call_sid="CA1"))
    assert (second.conn_seq, second.resumed) == (2, True)
    call = store.get_call("CA1")
    assert call is not None
    assert call.status == "active"
    assert call.custom_parameters == {"lang": "en"}  # kept from the first session


def test_a_connection_belongs_to_the_call_of_its_first_setup(store: DynamoSessionStore) -> None:
    # Twilio sends one setup per socket. A second one (a duplicate, or one naming another call's
    # SID) must neither restart the connection's generations nor point the socket at another
    # call's conversation (whose history its next prompt would load and write into).
    store.bind_connection("c1", SETUP)
    first = store.start_turn("c1")
    assert first is not None
    store.put_turns("CA1", [TurnRecord(key=TurnKey(first.conn_seq, first.generation, 0), role="user", text="one")])
    # The same setup again (or botocore retrying its put) is the same binding, not a restart.
    assert store.bind_connection("c1", SETUP).conn_seq == first.conn_seq
    for again in (Setup(session_id="VX9", call_sid="CA1"), Setup(session_id="VX9", call_sid="CA-another-call")):
        with pytest.raises(ConnectionAlreadyBoundError):
            store.bind_connection("c1", again)
    second = store.start_turn("c1")
    assert second is not None
    assert (second.call_sid, second.generation) == ("CA1", first.generation + 1)
    store.put_turns("CA1", [TurnRecord(key=TurnKey(second.conn_seq, second.generation, 0), role="user", text="two")])
    assert [r.text for r in store.load_history("CA1", 10)] == ["one", "two"]
    assert store.load_history("CA-another-call", 10) == []


class LostPutResponse:
    """The first conditional put lands but its answer is lost; botocore's retry meets the condition."""

    def __init__(self, inner: DynamoDBClient) -> None:
        self.inner = inner

    def put_item(self, **kwargs: Any) -> Any:
        if kwargs.get("ConditionExpression"):
            self.inner.put_item(**kwargs)
        return self.inner.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_retried_put_of_the_only_setup_still_binds_it(dynamodb: DynamoDBClient) -> None:
    store = DynamoSessionStore(client=LostPutResponse(dynamodb), table_name=TABLE, retention_days=7)  # type: ignore[arg-type]
    session = store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1"))
    assert (session.call_sid, session.conn_seq, session.resumed) == ("CA1", 1, False)
    assert store.start_turn("c1") is not None
    # A setup of another session on that socket is still a second setup, and refused.
    with pytest.raises(ConnectionAlreadyBoundError):
        store.bind_connection("c1", Setup(session_id="VX2", call_sid="CA1"))


def test_generations_are_taken_atomically_per_connection(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    tickets = [store.start_turn("c1") for _ in range(3)]
    assert [t.generation for t in tickets if t] == [1, 2, 3]
    assert tickets[0] is not None
    assert (tickets[0].call_sid, tickets[0].conn_seq, tickets[0].direction) == ("CA1", 1, "inbound")


def test_unknown_or_closed_connections_get_no_turn(store: DynamoSessionStore) -> None:
    assert store.start_turn("nobody") is None
    store.bind_connection("c1", SETUP)
    assert store.close_connection("c1", gone=False) == "CA1"
    assert store.start_turn("c1") is None
    assert store.close_connection("nobody", gone=True) is None


def test_claim_fails_once_a_newer_generation_exists(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    old = store.start_turn("c1")
    assert old is not None
    assert store.claim_phrase(old)
    new = store.start_turn("c1")
    assert new is not None
    assert not store.claim_phrase(old)
    assert store.claim_phrase(new)


def test_interrupt_cancels_the_speaking_generation_and_marks_what_was_heard(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    ticket = store.start_turn("c1")
    assert ticket is not None and store.claim_phrase(ticket)
    outcome = store.record_interrupt("c1", "It opens at", 420)
    assert outcome is not None
    assert outcome.cancelled
    assert outcome.interrupted == TurnKey(1, ticket.generation, INTERRUPTION_PART)
    assert not store.claim_phrase(ticket)
    marker = [r for r in store.load_history("CA1", 10) if r.role == "interruption"]
    assert [m.heard for m in marker] == ["It opens at"]


def test_interrupt_never_cancels_a_newer_prompt_that_has_not_spoken(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    speaking = store.start_turn("c1")
    assert speaking is not None and store.claim_phrase(speaking)
    newer = store.start_turn("c1")  # the caller spoke again; its reply has not started
    assert newer is not None
    outcome = store.record_interrupt("c1", "half a sen", None)
    assert outcome is not None
    assert not outcome.cancelled
    assert outcome.interrupted.generation == speaking.generation  # the speech that was on the air
    assert store.claim_phrase(newer)


def test_interrupt_during_the_greeting_marks_generation_zero(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    outcome = store.record_interrupt("c1", "Hi, this is", 300)
    assert outcome is not None
    assert outcome.interrupted == TurnKey(1, 0, INTERRUPTION_PART)
    assert store.record_interrupt("nobody", "x", None) is None


def test_history_is_one_bounded_query_in_order(store: DynamoSessionStore) -> None:
    records = [
        TurnRecord(key=TurnKey(1, g, p), role="user" if p == 0 else "assistant", text=f"{g}.{p}")
        for g in range(1, 16)
        for p in (0, 1)
    ]
    store.put_turns("CA1", records)  # 30 items: more than one batch
    assert [r.text for r in store.load_history("CA1", 100)] == [r.text for r in records]
    assert [r.text for r in store.load_history("CA1", 4)] == ["14.0", "14.1", "15.0", "15.1"]


def test_expired_items_are_filtered_on_read(dynamodb: DynamoDBClient) -> None:
    clock = [1_000_000.0]
    store = DynamoSessionStore(client=dynamodb, table_name=TABLE, retention_days=1, now=lambda: clock[0])
    store.put_turns("CA1", [TurnRecord(key=TurnKey(1, 1, 0), role="user", text="old")])
    clock[0] += 2 * 86400
    store.put_turns("CA1", [TurnRecord(key=TurnKey(1, 2, 0), role="user", text="new")])
    assert [r.text for r in store.load_history("CA1", 10)] == ["new"]


def test_every_item_written_has_a_ttl(store: DynamoSessionStore, dynamodb: DynamoDBClient) -> None:
    store.bind_connection("c1", SETUP)
    ticket = store.start_turn("c1")
    assert ticket is not None and store.claim_phrase(ticket)
    store.put_turns("CA1", [TurnRecord(key=TurnKey(1, 1, 0), role="user", text="hi")])
    store.record_interrupt("c1", "x", 1)
    store.count_reconnect("CA1")
    store.count_reconnect("CA-only-from-action")
    store.end_call("CA-ended-by-action", "completed")
    store.mark_farewell("CA1")
    items = all_items(dynamodb)
    assert len(items) >= 5
    assert all(TTL_ATTRIBUTE in item for item in items), [i["sk"] for i in items if TTL_ATTRIBUTE not in i]


def test_tool_calls_round_trip(store: DynamoSessionStore) -> None:
    from voice_agent.core.model import ToolCall

    call = ToolCall(id="call_1", name="lookup_order", arguments='{"order_id": "1001"}')
    store.put_turns(
        "CA1",
        [
            TurnRecord(key=TurnKey(1, 1, 1), role="assistant", text="Checking.", tool_calls=(call,)),
            TurnRecord(key=TurnKey(1, 1, 2), role="tool", text="{}", tool_call_id="call_1", tool_name="lookup_order"),
        ],
    )
    a, t = store.load_history("CA1", 10)
    assert a.tool_calls == (call,)
    assert (t.tool_call_id, t.tool_name) == ("call_1", "lookup_order")


def test_reconnects_and_call_end(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    assert [store.count_reconnect("CA1") for _ in range(3)] == [1, 2, 3]
    store.mark_farewell("CA1")
    store.end_call("CA1", "completed")
    call = store.get_call("CA1")
    assert call is not None
    assert (call.status, call.reconnects, call.farewell_spoken) == ("completed", 3, True)
    assert store.get_call("CA-unknown") is None


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "InternalServerError", "ThrottlingException"]
)
def test_dynamodb_failures_become_store_unavailable(dynamodb: DynamoDBClient, code: str) -> None:
    store = DynamoSessionStore(client=dynamodb, table_name=TABLE, retention_days=1)
    with Stubber(dynamodb) as stub:
        stub.add_client_error("update_item", service_error_code=code, http_status_code=400)
        with pytest.raises(StoreUnavailableError):
            store.start_turn("c1")


def test_keys_are_the_documented_ones() -> None:
    assert conn_key("c1") == {"pk": {"S": "CONN#c1"}, "sk": {"S": "CONN"}}
    assert call_key("CA1") == {"pk": {"S": "CALL#CA1"}, "sk": {"S": "CALL"}}


# -- what a turn's ticket carries, setups, tokens, ending ------------------------------------------


def test_a_ticket_carries_the_reply_on_the_air_and_the_unanswered_caller_messages(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    speaking = store.start_turn("c1", "Tell me everything")
    assert speaking is not None and speaking.unanswered == ("Tell me everything",)
    assert store.claim_phrase(speaking, "Well, it all")
    assert store.claim_phrase(speaking, "Well, it all began")
    first = store.start_turn("c1", "Stop.")  # supersedes the reply; it has not spoken yet
    second = store.start_turn("c1", "Actually, go on.")
    assert first is not None and second is not None
    assert (second.on_air.generation, second.on_air.text, second.on_air.done) == (
        speaking.generation,
        "Well, it all began",
        False,
    )
    assert second.unanswered == ("Stop.", "Actually, go on.")  # the claims cleared the first
    assert store.claim_phrase(second, "Sure.", final=True)
    third = store.start_turn("c1", "Thanks.")
    assert third is not None and third.on_air.done and third.unanswered == ("Thanks.",)


def test_a_storm_of_unanswered_prompts_keeps_only_the_newest(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    tickets = [store.start_turn("c1", f"prompt {n}") for n in range(12)]
    last = tickets[-1]
    assert last is not None and last.unanswered[-1] == "prompt 11" and len(last.unanswered) <= 8


def test_the_same_setup_twice_is_one_connection_of_the_call(
    store: DynamoSessionStore, dynamodb: DynamoDBClient
) -> None:
    first = store.bind_connection("c1", SETUP)
    with pytest.raises(ConnectionAlreadyBoundError):
        store.bind_connection("c1", Setup(session_id="VX9", call_sid="CA1"))
    again = store.bind_connection("c1", SETUP)  # the same setup, as a retried or duplicated frame
    assert (first.conn_seq, again.conn_seq, again.resumed) == (1, 1, False)
    call = dynamodb.get_item(TableName=TABLE, Key=call_key("CA1"))["Item"]
    assert call["connections"] == {"N": "1"}


def test_a_setup_without_the_calls_token_is_refused_and_changes_nothing(
    store: DynamoSessionStore, dynamodb: DynamoDBClient
) -> None:
    token = store.issue_call_token("CA1", "secret-token-1")
    assert store.issue_call_token("CA1", "another") == token == "secret-token-1"  # a retried /voice
    genuine = Setup(session_id="VX1", call_sid="CA1", custom_parameters={"callToken": token, "lang": "en"})
    store.bind_connection("c1", genuine)
    before = dynamodb.get_item(TableName=TABLE, Key=call_key("CA1"))["Item"]
    for forged in ({}, {"callToken": "guessed"}):
        with pytest.raises(CallTokenMismatchError):
            store.bind_connection("c2", Setup(session_id="VX2", call_sid="CA1", custom_parameters=forged))
    assert dynamodb.get_item(TableName=TABLE, Key=call_key("CA1"))["Item"] == before
    assert store.start_turn("c2") is None  # the refused socket is bound to nothing
    resumed = store.bind_connection(
        "c3", Setup(session_id="VX3", call_sid="CA1", custom_parameters={"callToken": token})
    )
    assert resumed.resumed
    call = store.get_call("CA1")
    assert call is not None and call.call_token == token
    assert call.custom_parameters == {"lang": "en"}  # the token is not one of the parameters


def test_setup_parameters_are_bounded_before_they_are_stored(store: DynamoSessionStore) -> None:
    params = {f"p{i}": "x" * 5000 for i in range(40)} | {"bad name": "y"}
    store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1", custom_parameters=params))
    call = store.get_call("CA1")
    assert call is not None
    assert len(call.custom_parameters) == 8 and all(len(v) == 256 for v in call.custom_parameters.values())


def test_an_empty_interrupt_after_a_newer_prompt_erases_nothing(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    spoken = store.start_turn("c1", "When do you open?")
    assert spoken is not None and store.claim_phrase(spoken, "At nine.", final=True)
    store.put_turns("CA1", [TurnRecord(key=TurnKey(1, spoken.generation, 1), role="assistant", text="At nine.")])
    assert store.start_turn("c1", "Where are you?") is not None
    outcome = store.record_interrupt("c1", "", 0)
    assert outcome is not None and not outcome.cancelled
    assert not [r for r in store.load_history("CA1", 10) if r.role == "interruption"]


def test_only_the_newest_turn_can_end_the_session_and_then_no_turn_starts(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    old = store.start_turn("c1")
    new = store.start_turn("c1")
    assert old is not None and new is not None
    assert not store.mark_ending(old)
    assert store.mark_ending(new)
    assert store.start_turn("c1", "one more thing") is None
    assert store.record_interrupt("c1", "One mo", 200) is not None  # what was heard is still stored
    assert store.close_connection("c1", gone=False) == "CA1"


def test_a_new_socket_marks_what_the_old_one_was_still_sending(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    cut = store.start_turn("c1", "Tell me about the store")
    assert cut is not None and store.claim_phrase(cut, "We have been here for")
    store.bind_connection("c2", Setup(session_id="VX2", call_sid="CA1"))
    [marker] = [r for r in store.load_history("CA1", 10) if r.role == "interruption"]
    assert (marker.key, marker.heard) == (TurnKey(1, cut.generation, INTERRUPTION_PART), "We have been here for")


def test_the_dynamodb_store_serves_every_client_port(store: DynamoSessionStore) -> None:
    whole: SessionStore = store  # mypy checks every port's methods against the adapter
    assert isinstance(whole, DynamoSessionStore)


def test_a_switched_language_survives_a_reconnect(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", SETUP)
    ticket = store.start_turn("c1", "¿Hablas español?")
    assert ticket is not None
    store.set_language(ticket, "es-ES")
    later = store.start_turn("c1")
    assert later is not None and later.language == "es-ES"
    resumed = store.bind_connection("c2", Setup(session_id="VX2", call_sid="CA1"))
    assert resumed.language == "es-ES"
    store.open_connection("c2")  # (the relay opens it once its greeting is stored)
    first_on_new_socket = store.start_turn("c2")
    assert first_on_new_socket is not None and first_on_new_socket.language == "es-ES"


def test_writes_that_can_create_a_call_item_set_its_ttl(store: DynamoSessionStore, dynamodb: DynamoDBClient) -> None:
    ticket = TurnTicket(connection_id="gone", call_sid="CA-new", conn_seq=1, generation=1)
    store.set_language(ticket, "de-DE")  # the connection item is gone: none is created without a TTL
    store.mark_farewell("CA-other")
    for item in all_items(dynamodb):
        assert TTL_ATTRIBUTE in item, item
    assert dynamodb.get_item(TableName=TABLE, Key=conn_key("gone")).get("Item") is None
