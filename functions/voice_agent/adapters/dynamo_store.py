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
    OnAir,
    ToolCall,
    TurnKey,
    TurnRecord,
    TurnTicket,
)
from voice_agent.errors import CallTokenMismatchError, ConnectionAlreadyBoundError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER, bounded_parameters
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_S = 24 * 3600  # a connection lives at most 2 h; keep its item a day for debugging
_CONDITION_FAILED = "ConditionalCheckFailedException"
_BATCH_LIMIT = 25
_BATCH_ATTEMPTS = 3
# The connection item carries the caller's unanswered messages and the reply on the air, bounded so
# it stays one or two write units: speech is short, and a storm of prompts keeps only the newest.
MAX_PENDING = 8
MAX_PENDING_CHARS = 1000
MAX_SPOKEN_CHARS = 4000

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
        leaves the conversation it names untouched (only that call's counters have moved). A setup
        without the call's token (when ``/voice`` issued one) is refused (``CallTokenMismatchError``)
        and touches nothing."""
        now = int(self._now())
        call, counted = self._bind_call(connection_id, setup, now)
        conn_seq = _get_n(call, "connections") + (1 if counted else 0)
        language = _get_s(call, "language") or None
        try:
            self._put_connection(connection_id, setup, conn_seq or 1, language, now)
        except ClientError as exc:  # only the connection's put has a condition
            bound = self._bound_by_this_setup(connection_id, setup, exc)
            if bound is None:
                raise ConnectionAlreadyBoundError(connection_id) from exc
            # botocore retried a put that had landed (its answer was lost): this setup's own item.
            conn_seq, language = _get_n(bound, "connSeq", 1), _get_s(bound, "language") or None
        previous = _get_s(call, "lastConnection")
        if counted and previous and previous != connection_id:
            self._keep_what_was_sent(setup.call_sid, previous)
        return CallSession(call_sid=setup.call_sid, conn_seq=conn_seq or 1, resumed=conn_seq > 1, language=language)

    def issue_call_token(self, call_sid: str, token: str) -> str:
        """Create the call item with ``token`` at ``/voice``; a retried webhook gets the first one."""
        now = int(self._now())
        with _store_errors("issue_call_token"):
            item = self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=(
                    "SET callToken = if_not_exists(callToken, :token), createdAt = if_not_exists(createdAt, :now),"
                    " #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":token": _s(token), ":now": _n(now), ":ttl": _n(now + self._retention_s)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        return _get_s(item, "callToken", token)

    def _bind_call(self, connection_id: str, setup: Setup, now: int) -> tuple[Item, bool]:
        """The call item as it was before this setup, and whether this setup counted a connection:
        a socket is counted once (two setups on one socket, or a retried write, are one binding)."""
        params, dropped = bounded_parameters(setup.custom_parameters)
        if dropped:
            logger.warning("setup parameters left out", extra={"dropped": dropped})
        token = setup.custom_parameters.get(CALL_TOKEN_PARAMETER, "")
        try:
            with _store_errors("bind_connection", passthrough=_CONDITION_FAILED):
                old = self._db.update_item(
                    TableName=self._table,
                    Key=call_key(setup.call_sid),
                    UpdateExpression=(
                        "SET #status = :active, updatedAt = :now, #ttl = :ttl, lastConnection = :cid,"
                        " createdAt = if_not_exists(createdAt, :now),"
                        " direction = if_not_exists(direction, :direction),"
                        " customParameters = if_not_exists(customParameters, :params)"
                        " ADD connections :one, boundConnections :cids"
                    ),
                    ConditionExpression=(
                        "(attribute_not_exists(callToken) OR callToken = :token)"
                        " AND NOT contains(boundConnections, :cid)"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":active": _s("active"),
                        ":now": _n(now),
                        ":ttl": _n(now + self._retention_s),
                        ":direction": _s(setup.direction),
                        ":params": {"M": {k: _s(v) for k, v in params.items()}},
                        ":one": _n(1),
                        ":cid": _s(connection_id),
                        ":cids": {"SS": [connection_id]},
                        ":token": _s(token or "-"),
                    },
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ).get("Attributes", {})
        except ClientError as exc:
            current = cast(Item, exc.response.get("Item") or {})
            if _get_s(current, "callToken") not in ("", token):
                raise CallTokenMismatchError(setup.call_sid) from exc
            return current, False  # this socket was counted already
        return old, True

    def _put_connection(self, connection_id: str, setup: Setup, conn_seq: int, language: str | None, now: int) -> None:
        with _store_errors("bind_connection", passthrough=_CONDITION_FAILED):
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

    def _keep_what_was_sent(self, call_sid: str, previous_connection: str) -> None:
        """The call resumes on a new socket: a reply the old socket was still speaking stores its
        text only when it notices, perhaps after this call's next turn read the history. Mark what
        it had sent now (best effort; an ``interrupt`` marker already there wins)."""
        try:
            with _store_errors("bind_connection.previous"):
                old = self._db.get_item(
                    TableName=self._table, Key=conn_key(previous_connection), ConsistentRead=True
                ).get("Item", {})
            on_air = _on_air(old)
            if on_air.done or on_air.generation <= GREETING_GENERATION or not on_air.text.strip():
                return
            key = TurnKey(_get_n(old, "connSeq"), on_air.generation, INTERRUPTION_PART)
            now = self._now()
            with _store_errors("bind_connection.previous", passthrough=_CONDITION_FAILED):
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        PARTITION_KEY: _s(f"CALL#{call_sid}"),
                        SORT_KEY: _s(key.sort_key),
                        "role": _s("interruption"),
                        "heard": _s(on_air.text),
                        "at": _n(int(now)),
                        "atMs": _n(int(now * 1000)),
                        TTL_ATTRIBUTE: _n(int(now) + self._retention_s),
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except (ClientError, StoreUnavailableError):
            logger.info("what the previous socket sent was not marked")

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

    def start_turn(self, connection_id: str, text: str = "") -> TurnTicket | None:
        """``ADD gen 1``, and append the caller's ``text`` to the connection's unanswered messages
        (``pending``, cleared by the next claim): the ticket carries them and what the reply on the
        air has said, so the turn sees both even before their own items are stored."""
        entry = {"L": [_s(text[:MAX_PENDING_CHARS])]}
        try:
            with _store_errors("start_turn", passthrough=_CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one SET pending = list_append(if_not_exists(pending, :none), :mine)",
                    ConditionExpression=(
                        "attribute_exists(pk) AND #status = :open"
                        " AND (attribute_not_exists(pending) OR size(pending) < :cap)"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":one": _n(1),
                        ":open": _s("open"),
                        ":none": {"L": []},
                        ":mine": entry,
                        ":cap": _n(MAX_PENDING),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )["Attributes"]
        except ClientError as exc:
            old = cast(dict[str, Any], exc.response.get("Item") or {})
            if _get_s(old, "status") != "open":
                return None  # unknown or not open (no setup yet, ending, or after disconnect)
            item = self._restart_pending(connection_id, entry)  # a storm of unanswered prompts
        return _ticket(connection_id, item)

    def _restart_pending(self, connection_id: str, entry: dict[str, Any]) -> Item:
        """``pending`` is full (callers who speak again and again before any reply is heard): keep
        only the newest message."""
        logger.info("unanswered caller messages past the cap; keeping the newest")
        with _store_errors("start_turn", passthrough=_CONDITION_FAILED):
            return cast(
                Item,
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one SET pending = :mine",
                    ConditionExpression="attribute_exists(pk) AND #status = :open",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":one": _n(1), ":open": _s("open"), ":mine": entry},
                    ReturnValues="ALL_NEW",
                )["Attributes"],
            )

    def claim_phrase(self, ticket: TurnTicket, spoken: str | None = None, *, final: bool = False) -> bool:
        """``spoken``: everything this turn will have sent once the claimed message is out; ``final``:
        the reply is stored and this is its closing frame. A newer turn reads both from its own
        ``start_turn`` (the reply it supersedes, as sent so far)."""
        update = "SET spokenGen = :g REMOVE pending"
        values: dict[str, Any] = {":g": _n(ticket.generation)}
        if spoken is not None:
            update = "SET spokenGen = :g, spokenText = :spoken REMOVE pending"
            values[":spoken"] = _s(spoken[:MAX_SPOKEN_CHARS])
        if final:
            update = update.replace(" REMOVE", ", spokenDone = :g REMOVE")
        try:
            with _store_errors("claim_phrase", passthrough=_CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression=update,
                    ConditionExpression="gen = :g",
                    ExpressionAttributeValues=values,
                )
        except ClientError:
            return False
        return True

    def mark_ending(self, ticket: TurnTicket) -> bool:
        """The turn decided to end the session (transfer or goodbye): if it is still the newest, the
        connection starts no new turn from now on (True); if a newer one took over, nothing (False)."""
        try:
            with _store_errors("mark_ending", passthrough=_CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression="SET #status = :ending",
                    ConditionExpression="#status = :open AND gen = :g",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":ending": _s("ending"),
                        ":open": _s("open"),
                        ":g": _n(ticket.generation),
                    },
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
        if not heard.strip() and (not cancelled or _on_air(old).done):
            # Nothing heard, said of a reply that was sent in full or that a newer prompt already
            # took over from: it cannot tell what the caller missed, so it must not erase the reply.
            return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)
        now = self._now()
        item: Item = {
            PARTITION_KEY: _s(f"CALL#{call_sid}"),
            SORT_KEY: _s(key.sort_key),
            "role": _s("interruption"),
            "heard": _s(heard),
            "at": _n(int(now)),
            "atMs": _n(int(now * 1000)),
            TTL_ATTRIBUTE: _n(int(now) + self._retention_s),
        }
        if duration_ms is not None:
            item["durationMs"] = _n(duration_ms)
        with _store_errors("record_interrupt.marker"):
            self._db.put_item(TableName=self._table, Item=item)
        return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)

    def set_language(self, ticket: TurnTicket, language: str) -> None:
        """The call switched language: this socket's next turns read it from the connection item,
        and a socket that resumes the call from the call item (``setup`` copies it over)."""
        try:
            with _store_errors("set_language", passthrough=_CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression="SET #language = :language",
                    ConditionExpression="attribute_exists(pk)",  # never an item without its TTL
                    ExpressionAttributeNames={"#language": "language"},
                    ExpressionAttributeValues={":language": _s(language)},
                )
        except ClientError:
            pass  # the connection item is gone: only the call keeps the language
        self._update_call(
            ticket.call_sid,
            "set_language",
            "#language = :language",
            {":language": _s(language)},
            {"#language": "language"},
        )

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
        with _store_errors(operation):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=f"SET {assignment}, #ttl = if_not_exists(#ttl, :ttl)",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, **(names or {})},
                ExpressionAttributeValues={**values, ":ttl": _n(now + self._retention_s)},
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
            call_token=_get_s(item, "callToken") or None,
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
        self._update_call(call_sid, "mark_farewell", "farewellSpoken = :yes", {":yes": {"BOOL": True}})

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
        now = self._now()
        items = [_item(call_sid, r, now, int(now) + self._retention_s) for r in records]
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
    pending = item.get("pending", {}).get("L", [])
    return TurnTicket(
        connection_id=connection_id,
        call_sid=_get_s(item, "callSid"),
        conn_seq=_get_n(item, "connSeq"),
        generation=_get_n(item, "gen"),
        language=_get_s(item, "language") or None,
        direction=_get_s(item, "direction"),
        on_air=_on_air(item),
        unanswered=tuple(v["S"] for v in pending if "S" in v),
    )


def _on_air(item: Mapping[str, Any]) -> OnAir:
    generation = _get_n(item, "spokenGen")
    return OnAir(
        generation=generation,
        text=_get_s(item, "spokenText"),
        done=generation > GREETING_GENERATION and _get_n(item, "spokenDone", -1) == generation,
    )


def _item(call_sid: str, r: TurnRecord, now: float, expires: int) -> Item:
    item: Item = {
        PARTITION_KEY: _s(f"CALL#{call_sid}"),
        SORT_KEY: _s(r.key.sort_key),
        "role": _s(r.role),
        "text": _s(r.text),
        "at": _n(int(now)),
        "atMs": _n(int(now * 1000)),
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
        at_ms=_get_n(item, "atMs") or _get_n(item, "at") * 1000 or None,
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
