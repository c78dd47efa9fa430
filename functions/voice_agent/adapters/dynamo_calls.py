"""The call side of the session store: binding a socket to its call, the call's token, reconnect
counts and how the call ended (the requests ``setup``, ``/voice`` and ``/action`` make).
``DynamoSessionStore`` in ``dynamo_store.py`` adds the turn side."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_context import context_attribute
from voice_agent.adapters.dynamo_items import (
    CONDITION_FAILED,
    Item,
    attr_n,
    attr_s,
    call_key,
    conn_key,
    get_n,
    get_s,
    on_air_from,
    store_errors,
)
from voice_agent.core.model import GREETING_GENERATION, INTERRUPTION_PART, CallRecord, CallSession, TurnKey
from voice_agent.errors import CallTokenMismatchError, ConnectionAlreadyBoundError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER, bounded_parameters
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_S = 24 * 3600  # a connection lives at most 2 h; keep its item a day for debugging


class CallItems:
    def __init__(
        self,
        *,
        client: DynamoDBClient,
        table_name: str,
        retention_days: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._db = client
        self._table = table_name
        self._retention_s = retention_days * 24 * 3600
        self._now = now

    # -- connection and call ------------------------------------------------------------------

    def bind_connection(self, connection_id: str, setup: Setup) -> CallSession:
        """The call (new, or resumed on a new socket), then the connection, bound for its lifetime:
        a later setup on the same connection is refused (``ConnectionAlreadyBoundError``) and
        leaves the conversation it names untouched (only that call's counters have moved). A setup
        without the call's token (when ``/voice`` issued one) is refused (``CallTokenMismatchError``)
        and touches nothing."""
        now = int(self._now())
        call, counted = self._bind_call(connection_id, setup, now)
        conn_seq = get_n(call, "connections") + (1 if counted else 0)
        language = get_s(call, "language") or None
        try:
            self._put_connection(
                connection_id, setup, conn_seq or 1, language, now, context=context_attribute(setup, call)
            )
        except ClientError as exc:  # only the connection's put has a condition
            bound = self._bound_by_this_setup(connection_id, setup, exc)
            if bound is None:
                raise ConnectionAlreadyBoundError(connection_id) from exc
            # botocore retried a put that had landed (its answer was lost): this setup's own item.
            conn_seq, language = get_n(bound, "connSeq", 1), get_s(bound, "language") or None
        previous = get_s(call, "lastConnection")
        if counted and previous and previous != connection_id:
            self._keep_what_was_sent(setup.call_sid, previous)
        return CallSession(call_sid=setup.call_sid, conn_seq=conn_seq or 1, resumed=conn_seq > 1, language=language)

    def issue_call_token(self, call_sid: str, token: str) -> str:
        """Create the call item with ``token`` at ``/voice``; a retried webhook gets the first one."""
        now = int(self._now())
        with store_errors("issue_call_token"):
            item = self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=(
                    "SET callToken = if_not_exists(callToken, :token), createdAt = if_not_exists(createdAt, :now),"
                    " #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":token": attr_s(token),
                    ":now": attr_n(now),
                    ":ttl": attr_n(now + self._retention_s),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        return get_s(item, "callToken", token)

    def _bind_call(self, connection_id: str, setup: Setup, now: int) -> tuple[Item, bool]:
        """The call item as it was before this setup, and whether this setup counted a connection:
        a socket is counted once (two setups on one socket, or a retried write, are one binding)."""
        params, dropped = bounded_parameters(setup.custom_parameters)
        if dropped:
            logger.warning("setup parameters left out", extra={"dropped": dropped})
        token = setup.custom_parameters.get(CALL_TOKEN_PARAMETER, "")
        try:
            with store_errors("bind_connection", passthrough=CONDITION_FAILED):
                old = self._db.update_item(
                    TableName=self._table,
                    Key=call_key(setup.call_sid),
                    UpdateExpression=(
                        "SET #status = :active, updatedAt = :now, #ttl = :ttl, lastConnection = :cid,"
                        " createdAt = if_not_exists(createdAt, :now),"
                        " direction = if_not_exists(direction, :direction),"
                        " fromNumber = if_not_exists(fromNumber, :from), toNumber = if_not_exists(toNumber, :to),"
                        " customParameters = if_not_exists(customParameters, :params)"
                        " ADD connections :one, boundConnections :cids"
                    ),
                    ConditionExpression=(
                        "(attribute_not_exists(callToken) OR callToken = :token)"
                        " AND NOT contains(boundConnections, :cid)"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":active": attr_s("active"),
                        ":now": attr_n(now),
                        ":ttl": attr_n(now + self._retention_s),
                        ":direction": attr_s(setup.direction),
                        ":from": attr_s(setup.from_number),
                        ":to": attr_s(setup.to_number),
                        ":params": {"M": {k: attr_s(v) for k, v in params.items()}},
                        ":one": attr_n(1),
                        ":cid": attr_s(connection_id),
                        ":cids": {"SS": [connection_id]},
                        ":token": attr_s(token or "-"),
                    },
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ).get("Attributes", {})
        except ClientError as exc:
            current = cast(Item, exc.response.get("Item") or {})
            if get_s(current, "callToken") not in ("", token):
                raise CallTokenMismatchError(setup.call_sid) from exc
            return current, False  # this socket was counted already
        return old, True

    def _put_connection(
        self, connection_id: str, setup: Setup, conn_seq: int, language: str | None, now: int, *, context: Item
    ) -> None:
        with store_errors("bind_connection", passthrough=CONDITION_FAILED):
            self._db.put_item(
                TableName=self._table,
                Item={
                    **conn_key(connection_id),
                    "callSid": attr_s(setup.call_sid),
                    "sessionId": attr_s(setup.session_id),
                    "connSeq": attr_n(conn_seq),
                    "gen": attr_n(GREETING_GENERATION),
                    "spokenGen": attr_n(GREETING_GENERATION),
                    "direction": attr_s(setup.direction),
                    **({"language": attr_s(language)} if language else {}),
                    "status": attr_s("open"),
                    **context,  # the call context every turn's start_turn reads (dynamo_context.py)
                    "createdAt": attr_n(now),
                    TTL_ATTRIBUTE: attr_n(now + CONNECTION_TTL_S),
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

    def _keep_what_was_sent(self, call_sid: str, previous_connection: str) -> None:
        """The call resumes on a new socket: a reply the old socket was still speaking stores its
        text only when it notices, perhaps after this call's next turn read the history. Mark what
        it had sent now (best effort; an ``interrupt`` marker already there wins)."""
        try:
            with store_errors("bind_connection.previous"):
                old = self._db.get_item(
                    TableName=self._table, Key=conn_key(previous_connection), ConsistentRead=True
                ).get("Item", {})
            on_air = on_air_from(old)
            if on_air.done or on_air.generation <= GREETING_GENERATION or not on_air.text.strip():
                return
            key = TurnKey(get_n(old, "connSeq"), on_air.generation, INTERRUPTION_PART)
            now = self._now()
            with store_errors("bind_connection.previous", passthrough=CONDITION_FAILED):
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        PARTITION_KEY: attr_s(f"CALL#{call_sid}"),
                        SORT_KEY: attr_s(key.sort_key),
                        "role": attr_s("interruption"),
                        "heard": attr_s(on_air.text),
                        "at": attr_n(int(now)),
                        "atMs": attr_n(int(now * 1000)),
                        TTL_ATTRIBUTE: attr_n(int(now) + self._retention_s),
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except (ClientError, StoreUnavailableError):
            logger.info("what the previous socket sent was not marked")

    def _bound_by_this_setup(self, connection_id: str, setup: Setup, exc: ClientError) -> dict[str, Any] | None:
        """The connection item that failed the put's condition, if this very setup wrote it."""
        item = cast("dict[str, Any] | None", exc.response.get("Item"))  # ReturnValuesOnConditionCheckFailure
        if item is None:
            with store_errors("bind_connection"):
                item = self._db.get_item(TableName=self._table, Key=conn_key(connection_id), ConsistentRead=True).get(
                    "Item"
                )
        if item and get_s(item, "callSid") == setup.call_sid and get_s(item, "sessionId") == setup.session_id:
            return item
        return None

    def _update_call(
        self,
        call_sid: str,
        operation: str,
        assignment: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> None:
        """``SET assignment`` on the call item; the TTL too, if this write creates the item."""
        now = int(self._now())
        with store_errors(operation):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=f"SET {assignment}, #ttl = if_not_exists(#ttl, :ttl)",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, **(names or {})},
                ExpressionAttributeValues={**values, ":ttl": attr_n(now + self._retention_s)},
            )

    def get_call(self, call_sid: str) -> CallRecord | None:
        with store_errors("get_call"):
            item = self._db.get_item(TableName=self._table, Key=call_key(call_sid), ConsistentRead=True).get("Item")
        if not item:
            return None
        params = item.get("customParameters", {}).get("M", {})
        return CallRecord(
            call_sid=call_sid,
            status=get_s(item, "status"),
            reconnects=get_n(item, "reconnects"),
            farewell_spoken=item.get("farewellSpoken", {}).get("BOOL", False),
            custom_parameters={k: v.get("S", "") for k, v in params.items()},
            call_token=get_s(item, "callToken") or None,
        )

    def count_reconnect(self, call_sid: str, session_id: str | None = None) -> int:
        now = int(self._now())
        update = "ADD reconnects :one SET updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
        values: dict[str, Any] = {":one": attr_n(1), ":now": attr_n(now), ":ttl": attr_n(now + self._retention_s)}
        once: dict[str, Any] = {}
        if session_id:
            # One count per relay session: a replayed (or retried) callback gets the same answer.
            update = (
                "ADD reconnects :one, failedSessions :sessions SET updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
            )
            values.update({":sessions": {"SS": [session_id]}, ":session": attr_s(session_id)})
            once = {
                "ConditionExpression": "NOT contains(failedSessions, :session)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        try:
            with store_errors("count_reconnect", passthrough=CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression=update,
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                    **once,
                )["Attributes"]
        except ClientError as exc:  # this session was counted already
            item = cast(dict[str, Any], exc.response.get("Item") or {})
        return get_n(item, "reconnects")

    def mark_farewell(self, call_sid: str) -> None:
        self._update_call(call_sid, "mark_farewell", "farewellSpoken = :yes", {":yes": {"BOOL": True}})

    def end_call(self, call_sid: str, status: str) -> None:
        now = int(self._now())
        with store_errors("end_call"):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=(
                    "SET #status = :status, endedAt = :now, updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":status": attr_s(status),
                    ":now": attr_n(now),
                    ":ttl": attr_n(now + self._retention_s),
                },
            )
