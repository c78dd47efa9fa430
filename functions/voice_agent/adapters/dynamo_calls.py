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
    store_errors,
)
from voice_agent.adapters.dynamo_sockets import CONNECTION_TTL_S, Handover, SocketItems
from voice_agent.core.model import GREETING_GENERATION, CallRecord, CallSession
from voice_agent.errors import CallTokenMismatchError, ConnectionAlreadyBoundError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER, bounded_parameters
from voice_agent.table_schema import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# What an adopted socket's connection item says its session is: Twilio sent no setup on it.
ADOPTED_SESSION = "application-reconnect"


def call_record(call_sid: str, item: Item) -> CallRecord:
    params = item.get("customParameters", {}).get("M", {})
    return CallRecord(
        call_sid=call_sid,
        status=get_s(item, "status"),
        reconnects=get_n(item, "reconnects"),
        farewell_spoken=item.get("farewellSpoken", {}).get("BOOL", False),
        custom_parameters={k: v.get("S", "") for k, v in params.items()},
        call_token=get_s(item, "callToken") or None,
        language=get_s(item, "language") or None,
        speech_fallbacks=frozenset(item.get("speechFallbacks", {}).get("SS", [])),
        config_errors=get_n(item, "configErrors"),
    )


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
        self._sockets = SocketItems(client=client, table_name=table_name, retention_s=self._retention_s, now=now)

    # -- connection and call ------------------------------------------------------------------

    def bind_connection(self, connection_id: str, setup: Setup, *, adopted: bool = False) -> CallSession:
        """The call (new, or resumed on a new socket), then the connection, bound for its lifetime:
        a later setup on the same connection is refused (``ConnectionAlreadyBoundError``) and
        leaves the conversation it names untouched (only that call's counters have moved). A setup
        without the call's token (when ``/voice`` issued one) is refused (``CallTokenMismatchError``)
        and touches nothing. ``adopted``: no setup, a socket ``$connect`` checked (its URL's token)."""
        now = int(self._now())
        call, counted = self._bind_call(connection_id, setup, now, check_token=not adopted)
        conn_seq = get_n(call, "connections") + (1 if counted else 0)
        language = get_s(call, "language") or None
        direction = setup.direction or get_s(call, "direction")
        previous = get_s(call, "lastConnection")
        # A socket that takes over from another one starts no turn until the handover (what the
        # previous socket was saying, marked as heard; the replays it must refuse) and its greeting
        # are stored: a prompt that overtakes this setup waits for it (``open_connection``).
        handing_over = bool(counted and previous and previous != connection_id)
        prebound: Item = {}
        try:
            prebound = self._put_connection(
                connection_id,
                setup,
                (conn_seq or 1, language, direction),
                now,
                context=context_attribute(setup, call),
                status="binding" if handing_over else "open",
            )
        except ClientError as exc:  # only the connection's put has a condition
            bound = self._bound_by_this_setup(connection_id, setup, exc)
            if bound is None:
                raise ConnectionAlreadyBoundError(connection_id) from exc
            # botocore retried a put that had landed (its answer was lost): this setup's own item.
            conn_seq, language = get_n(bound, "connSeq", 1), get_s(bound, "language") or None
        app_reconnect = adopted or prebound.get("appReconnect", {}).get("BOOL", False)
        handover = Handover(app_reconnect=app_reconnect, owed=False)
        if handing_over:
            handover = self._sockets.hand_over(
                setup.call_sid, previous, connection_id, session_id=setup.session_id, app_reconnect=app_reconnect
            )
            if adopted:  # no setup, so no greeting: the turn that bound it starts now
                self.open_connection(connection_id)
        return CallSession(
            call_sid=setup.call_sid,
            conn_seq=conn_seq or 1,
            resumed=conn_seq > 1,
            language=language,
            app_reconnect=handover.app_reconnect,
            owed=handover.owed,
            opening=handing_over and not adopted,
        )

    def open_connection(self, connection_id: str) -> None:
        """A socket bound ``binding`` (it takes over from another one) starts taking turns. Not if it
        closed meanwhile; a store failure is logged (its prompts are then ignored as on a socket
        with no setup, and ``/action`` recovers the call when Twilio gives up on it)."""
        try:
            with store_errors("open_connection", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="SET #status = :open",
                    ConditionExpression="#status = :binding",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":open": attr_s("open"), ":binding": attr_s("binding")},
                )
        except ClientError:
            logger.info("socket closed before it was opened for turns")
        except StoreUnavailableError:
            logger.error("socket not opened for turns; its prompts will be ignored")

    def prebind_connection(self, connection_id: str, call_sid: str, session: int) -> bool:
        """``$connect``: which call the socket belongs to, and whether it is Twilio's application
        reconnect (``dynamo_sockets.py``)."""
        return self._sockets.prebind(connection_id, call_sid, session)

    def adopt_connection(self, connection_id: str) -> CallSession | None:
        """Bind a socket ``$connect`` noted as an application reconnect that no setup has bound: Twilio
        may send none on the new socket. ``None`` if it is not one (a setup is still to come)."""
        noted = self._sockets.noted(connection_id)
        if noted is None or not noted.get("appReconnect", {}).get("BOOL", False):
            return None
        logger.info("socket bound without a setup (application reconnect)")
        setup = Setup(session_id=ADOPTED_SESSION, call_sid=get_s(noted, "callSid"))
        try:
            return self.bind_connection(connection_id, setup, adopted=True)
        except ConnectionAlreadyBoundError:
            return None  # a setup bound it meanwhile

    def take_owed(self, connection_id: str) -> tuple[str, ...] | None:
        return self._sockets.take_owed(connection_id)

    def latest_socket(self, call_sid: str) -> str | None:
        return self._sockets.latest_upgrade(call_sid)

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

    def _bind_call(self, connection_id: str, setup: Setup, now: int, *, check_token: bool) -> tuple[Item, bool]:
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
                        "(attribute_not_exists(callToken) OR callToken = :token OR :checked = :yes)"
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
                        ":checked": {"BOOL": not check_token},  # $connect checked the URL's token
                        ":yes": {"BOOL": True},
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
        self,
        connection_id: str,
        setup: Setup,
        seq_language_direction: tuple[int, str | None, str],
        now: int,
        *,
        context: Item,
        status: str = "open",
    ) -> Item:
        """The connection item, replacing the note ``$connect`` left for this call (returned), if any;
        a socket noted for another call, or already set up, fails the condition. ``context``: the
        call context every turn's ``start_turn`` reads (``dynamo_context.py``)."""
        conn_seq, language, direction = seq_language_direction
        with store_errors("bind_connection", passthrough=CONDITION_FAILED):
            return self._db.put_item(
                TableName=self._table,
                Item={
                    **conn_key(connection_id),
                    "callSid": attr_s(setup.call_sid),
                    "sessionId": attr_s(setup.session_id),
                    "connSeq": attr_n(conn_seq),
                    "gen": attr_n(GREETING_GENERATION),
                    "spokenGen": attr_n(GREETING_GENERATION),
                    "direction": attr_s(direction),
                    **({"language": attr_s(language)} if language else {}),
                    "status": attr_s(status),
                    **context,  # the call context every turn's start_turn reads (dynamo_context.py)
                    "createdAt": attr_n(now),
                    TTL_ATTRIBUTE: attr_n(now + CONNECTION_TTL_S),
                },
                ConditionExpression="attribute_not_exists(pk) OR (#status = :connecting AND callSid = :call)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":connecting": attr_s("connecting"), ":call": attr_s(setup.call_sid)},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ).get("Attributes", {})

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
        return call_record(call_sid, item) if item else None

    def count_reconnect(self, call_sid: str, session_id: str | None = None) -> int:
        return self.record_failure(call_sid, session_id).reconnects

    def record_failure(self, call_sid: str, session_id: str | None = None, fallback: str | None = None) -> CallRecord:
        """Count one more reconnect attempt (once per ``session_id``) and remember what failed
        (``fallback``: ``stt``, ``tts`` or ``config``); returns the call as it stands after, in the same
        request. Asked again for the same session, changes nothing and returns the call as it is."""
        now = int(self._now())
        adds = ["reconnects :one"]
        values: dict[str, Any] = {":one": attr_n(1), ":now": attr_n(now), ":ttl": attr_n(now + self._retention_s)}
        once: dict[str, Any] = {}
        if session_id:
            # One count per relay session: a replayed (or retried) callback gets the same answer.
            adds.append("failedSessions :sessions")
            values.update({":sessions": {"SS": [session_id]}, ":session": attr_s(session_id)})
            once = {
                "ConditionExpression": "NOT contains(failedSessions, :session)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        if fallback:
            adds.append("speechFallbacks :fallback")
            values[":fallback"] = {"SS": [fallback]}
            if fallback == "config":
                adds.append("configErrors :one")
        try:
            with store_errors("count_reconnect", passthrough=CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression=f"ADD {', '.join(adds)} SET updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    **once,
                )["Attributes"]
        except ClientError as exc:  # this session was counted already
            item = cast(dict[str, Any], exc.response.get("Item") or {})
        return call_record(call_sid, item)

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
