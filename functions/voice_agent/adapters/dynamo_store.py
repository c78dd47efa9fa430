"""The session store on DynamoDB (see ``table_schema`` for the items).

Every write is a single atomic request: counters with ``ADD``, guards with conditions. Nothing
reads the whole history and writes it back, because several Lambdas of one call run at once:

- ``start_turn``: ``ADD gen 1`` on the connection item returns the call and the new generation in
  one round trip (the connection item is the only key a WebSocket event carries).
- ``claim_phrase``: ``SET spokenGen = :g IF gen = :g`` before each phrase: fails once an interrupt
  or a newer prompt took the generation, and records which generation is on the air.
- ``record_interrupt``: ``ADD gen 1 IF gen = spokenGen`` cancels the speaking reply only if no
  newer prompt has started; either way a marker item stores what the caller heard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.core.model import (
    FIRST_AGENT_PART,
    GREETING_GENERATION,
    INTERRUPTION_PART,
    CallRecord,
    CallSession,
    InterruptOutcome,
    ToolCall,
    TurnKey,
    TurnRecord,
    TurnTicket,
)
from voice_agent.errors import ConnectionAlreadyBoundError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_S = 24 * 3600  # a connection lives at most 2 h; keep its item a day for debugging
_CONDITION_FAILED = "ConditionalCheckFailedException"
_BATCH_LIMIT = 25
_BATCH_ATTEMPTS = 3

Item = dict[str, Any]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _get_s(item: Mapping[str, Any], name: str, default: str = "") -> str:
    v = item.get(name)
    return v["S"] if v and "S" in v else default


def _get_n(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    v = item.get(name)
    return int(v["N"]) if v and "N" in v else default


def conn_key(connection_id: str) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: _s(f"CONN#{connection_id}"), SORT_KEY: _s("CONN")}


def call_key(call_sid: str) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: _s(f"CALL#{call_sid}"), SORT_KEY: _s("CALL")}


class DynamoSessionStore:
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
        leaves the conversation it names untouched (only that call's counters have moved)."""
        now = int(self._now())
        try:
            conn_seq, language = self._bind(connection_id, setup, now)
        except ClientError as exc:  # only the connection's put has a condition
            bound = self._bound_by_this_setup(connection_id, setup, exc)
            if bound is None:
                raise ConnectionAlreadyBoundError(connection_id) from exc
            # botocore retried a put that had landed (its answer was lost): this setup's own item.
            conn_seq, language = _get_n(bound, "connSeq", 1), _get_s(bound, "language") or None
        return CallSession(call_sid=setup.call_sid, conn_seq=conn_seq, resumed=conn_seq > 1, language=language)

    def _bound_by_this_setup(self, connection_id: str, setup: Setup, exc: ClientError) -> dict[str, Any] | None:
        """The connection item that failed the put's condition, if this very setup wrote it."""
        item = cast("dict[str, Any] | None", exc.response.get("Item"))  # ReturnValuesOnConditionCheckFailure
        if item is None:
            with _store_errors("bind_connection"):
                item = self._db.get_item(TableName=self._table, Key=conn_key(connection_id), ConsistentRead=True).get(
                    "Item"
                )
        if item and _get_s(item, "callSid") == setup.call_sid and _get_s(item, "sessionId") == setup.session_id:
            return item
        return None

    def _bind(self, connection_id: str, setup: Setup, now: int) -> tuple[int, str | None]:
        with _store_errors("bind_connection", passthrough=_CONDITION_FAILED):
            call = self._db.update_item(
                TableName=self._table,
                Key=call_key(setup.call_sid),
                UpdateExpression=(
                    "SET #status = :active, updatedAt = :now, #ttl = :ttl,"
                    " createdAt = if_not_exists(createdAt, :now),"
                    " direction = if_not_exists(direction, :direction),"
                    " customParameters = if_not_exists(customParameters, :params)"
                    " ADD connections :one"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":active": _s("active"),
                    ":now": _n(now),
                    ":ttl": _n(now + self._retention_s),
                    ":direction": _s(setup.direction),
                    ":params": {"M": {k: _s(v) for k, v in setup.custom_parameters.items()}},
                    ":one": _n(1),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
            conn_seq = _get_n(call, "connections", 1)
            language = _get_s(call, "language") or None
            self._db.put_item(
                TableName=self._table,
                Item={
                    **conn_key(connection_id),
                    "callSid": _s(setup.call_sid),
                    "sessionId": _s(setup.session_id),
                    "connSeq": _n(conn_seq),
                    "gen": _n(GREETING_GENERATION),
                    "spokenGen": _n(GREETING_GENERATION),
                    "direction": _s(setup.direction),
                    **({"language": _s(language)} if language else {}),
                    "status": _s("open"),
                    "createdAt": _n(now),
                    TTL_ATTRIBUTE: _n(now + CONNECTION_TTL_S),
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return conn_seq, language

    def start_turn(self, connection_id: str) -> TurnTicket | None:
        try:
            with _store_errors("start_turn", passthrough=_CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one",
                    ConditionExpression="attribute_exists(pk) AND #status = :open",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":one": _n(1), ":open": _s("open")},
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ClientError:
            return None  # unknown or closed connection (no setup yet, or after disconnect)
        return _ticket(connection_id, item)

    def claim_phrase(self, ticket: TurnTicket) -> bool:
        try:
            with _store_errors("claim_phrase", passthrough=_CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression="SET spokenGen = :g",
                    ConditionExpression="gen = :g",
                    ExpressionAttributeValues={":g": _n(ticket.generation)},
                )
        except ClientError:
            return False
        return True

    def record_interrupt(self, connection_id: str, heard: str, duration_ms: int | None) -> InterruptOutcome | None:
        cancelled = True
        old: dict[str, Any]
        try:
            with _store_errors("record_interrupt", passthrough=_CONDITION_FAILED):
                old = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one",
                    ConditionExpression="attribute_exists(pk) AND gen = spokenGen",
                    ExpressionAttributeValues={":one": _n(1)},
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )["Attributes"]
        except ClientError as exc:
            # A newer prompt already holds the generation (it has not spoken yet): leave it
            # running; the interrupt belongs to the speech that is on the air.
            old = cast(dict[str, Any], exc.response.get("Item") or {})
            cancelled = False
        if not old:
            return None
        call_sid = _get_s(old, "callSid")
        key = TurnKey(_get_n(old, "connSeq"), _get_n(old, "spokenGen"), INTERRUPTION_PART)
        now = int(self._now())
        item: Item = {
            PARTITION_KEY: _s(f"CALL#{call_sid}"),
            SORT_KEY: _s(key.sort_key),
            "role": _s("interruption"),
            "heard": _s(heard),
            "at": _n(now),
            TTL_ATTRIBUTE: _n(now + self._retention_s),
        }
        if duration_ms is not None:
            item["durationMs"] = _n(duration_ms)
        with _store_errors("record_interrupt.marker"):
            self._db.put_item(TableName=self._table, Item=item)
        return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)

    def set_language(self, connection_id: str, language: str) -> None:
        with _store_errors("set_language"):
            self._db.update_item(
                TableName=self._table,
                Key=conn_key(connection_id),
                UpdateExpression="SET #language = :language",
                ExpressionAttributeNames={"#language": "language"},
                ExpressionAttributeValues={":language": _s(language)},
            )

    def close_connection(self, connection_id: str, *, gone: bool) -> str | None:
        try:
            with _store_errors("close_connection", passthrough=_CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="SET #status = :status, closedAt = :now",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":status": _s("gone" if gone else "closed"),
                        ":now": _n(int(self._now())),
                    },
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ClientError:
            return None
        return _get_s(item, "callSid") or None

    def get_call(self, call_sid: str) -> CallRecord | None:
        with _store_errors("get_call"):
            item = self._db.get_item(TableName=self._table, Key=call_key(call_sid), ConsistentRead=True).get("Item")
        if not item:
            return None
        params = item.get("customParameters", {}).get("M", {})
        return CallRecord(
            call_sid=call_sid,
            status=_get_s(item, "status"),
            reconnects=_get_n(item, "reconnects"),
            farewell_spoken=item.get("farewellSpoken", {}).get("BOOL", False),
            custom_parameters={k: v.get("S", "") for k, v in params.items()},
        )

    def count_reconnect(self, call_sid: str, session_id: str | None = None) -> int:
        now = int(self._now())
        update = "ADD reconnects :one SET updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
        values: dict[str, Any] = {":one": _n(1), ":now": _n(now), ":ttl": _n(now + self._retention_s)}
        once: dict[str, Any] = {}
        if session_id:
            # One count per relay session: a replayed (or retried) callback gets the same answer.
            update = (
                "ADD reconnects :one, failedSessions :sessions SET updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
            )
            values.update({":sessions": {"SS": [session_id]}, ":session": _s(session_id)})
            once = {
                "ConditionExpression": "NOT contains(failedSessions, :session)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        try:
            with _store_errors("count_reconnect", passthrough=_CONDITION_FAILED):
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
        return _get_n(item, "reconnects")

    def mark_farewell(self, call_sid: str) -> None:
        with _store_errors("mark_farewell"):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression="SET farewellSpoken = :yes",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )

    def end_call(self, call_sid: str, status: str) -> None:
        now = int(self._now())
        with _store_errors("end_call"):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=(
                    "SET #status = :status, endedAt = :now, updatedAt = :now, #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":status": _s(status),
                    ":now": _n(now),
                    ":ttl": _n(now + self._retention_s),
                },
            )

    # -- turns ---------------------------------------------------------------------------------

    def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
        with _store_errors("load_history"):
            items = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
                ExpressionAttributeValues={":pk": _s(f"CALL#{call_sid}"), ":turn": _s("TURN#")},
                ScanIndexForward=False,
                Limit=max_items,
                ConsistentRead=True,
            )["Items"]
        now = int(self._now())
        records = [_record(i) for i in reversed(items) if _get_n(i, TTL_ATTRIBUTE, now + 1) > now]
        return records

    def put_turns(self, call_sid: str, records: Sequence[TurnRecord]) -> None:
        if not records:
            return
        now = int(self._now())
        items = [_item(call_sid, r, now, now + self._retention_s) for r in records]
        with _store_errors("put_turns"):
            if len(items) == 1:
                self._db.put_item(TableName=self._table, Item=items[0])
                return
            for start in range(0, len(items), _BATCH_LIMIT):
                pending: list[Any] = [{"PutRequest": {"Item": i}} for i in items[start : start + _BATCH_LIMIT]]
                for _ in range(_BATCH_ATTEMPTS):
                    unprocessed = self._db.batch_write_item(RequestItems={self._table: pending}).get(
                        "UnprocessedItems", {}
                    )
                    pending = list(unprocessed.get(self._table, []))
                    if not pending:
                        break
                if pending:
                    raise StoreUnavailableError(f"{len(pending)} turn items left unprocessed")


def _ticket(connection_id: str, item: Mapping[str, Any]) -> TurnTicket:
    return TurnTicket(
        connection_id=connection_id,
        call_sid=_get_s(item, "callSid"),
        conn_seq=_get_n(item, "connSeq"),
        generation=_get_n(item, "gen"),
        language=_get_s(item, "language") or None,
        direction=_get_s(item, "direction"),
    )


def _item(call_sid: str, r: TurnRecord, now: int, expires: int) -> Item:
    item: Item = {
        PARTITION_KEY: _s(f"CALL#{call_sid}"),
        SORT_KEY: _s(r.key.sort_key),
        "role": _s(r.role),
        "text": _s(r.text),
        "at": _n(now),
        TTL_ATTRIBUTE: _n(expires),
    }
    if r.tool_calls:
        item["toolCalls"] = _s(json.dumps([[c.id, c.name, c.arguments] for c in r.tool_calls]))
    if r.tool_call_id:
        item["toolCallId"] = _s(r.tool_call_id)
    if r.tool_name:
        item["toolName"] = _s(r.tool_name)
    if r.heard is not None:
        item["heard"] = _s(r.heard)
    return item


def _record(item: Mapping[str, Any]) -> TurnRecord:
    calls: tuple[ToolCall, ...] = ()
    if "toolCalls" in item:
        calls = tuple(ToolCall(id=c[0], name=c[1], arguments=c[2]) for c in json.loads(_get_s(item, "toolCalls")))
    role = _get_s(item, "role")
    heard = item.get("heard", {}).get("S")
    return TurnRecord(
        key=TurnKey.parse(_get_s(item, SORT_KEY)),
        role=role if role in ("user", "assistant", "tool", "interruption") else "assistant",  # type: ignore[arg-type]
        text=_get_s(item, "text"),
        tool_calls=calls,
        tool_call_id=_get_s(item, "toolCallId") or None,
        tool_name=_get_s(item, "toolName") or None,
        heard=heard,
    )


@contextmanager
def _store_errors(operation: str, passthrough: str | None = None) -> Iterator[None]:
    """Map botocore failures to ``StoreUnavailableError``; let one expected error code through."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if passthrough is not None and code == passthrough:
            raise
        logger.warning("dynamodb request failed", extra={"operation": operation, "error_code": code})
        raise StoreUnavailableError(f"{operation}: {code}") from exc
    except BotoCoreError as exc:
        logger.warning("dynamodb unreachable", extra={"operation": operation, "error": type(exc).__name__})
        raise StoreUnavailableError(f"{operation}: {type(exc).__name__}") from exc


__all__ = ["FIRST_AGENT_PART", "DynamoSessionStore", "call_key", "conn_key"]
