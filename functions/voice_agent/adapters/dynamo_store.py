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

from collections.abc import Sequence
from typing import Any, cast

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_calls import CallItems
from voice_agent.adapters.dynamo_context import ContextItems
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
    ticket_from,
    turn_item,
    turn_record,
)
from voice_agent.adapters.dynamo_records import RecordItems
from voice_agent.adapters.dynamo_sockets import CONNECTION_TTL_S
from voice_agent.adapters.dynamo_speculation import SpeculationItems
from voice_agent.adapters.dynamo_timers import TimerItems
from voice_agent.core.model import (
    FIRST_AGENT_PART,
    GREETING_GENERATION,
    INTERRUPTION_PART,
    InterruptOutcome,
    PendingEnd,
    TurnKey,
    TurnRecord,
    TurnTicket,
)
from voice_agent.core.replay import fingerprint
from voice_agent.errors import ReplayedMessageError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

_BATCH_LIMIT = 25
_BATCH_ATTEMPTS = 3
# The connection item carries the caller's unanswered messages and the reply on the air, bounded so
# it stays one or two write units: speech is short, and a storm of prompts keeps only the newest.
MAX_PENDING = 8
MAX_PENDING_CHARS = 1000
MAX_SPOKEN_CHARS = 4000
NORMAL_CLOSE = 1000  # a hang-up, or after ``end``: the socket is not coming back


class DynamoSessionStore(SpeculationItems, TimerItems, RecordItems, ContextItems, CallItems):
    """Every port of ``core/ports.py`` on one table: the call side (``CallItems``), the timers and
    key entry (``TimerItems``), the call record (``RecordItems``), the speculation's slot
    (``SpeculationItems``) and the turns."""

    def start_turn(self, connection_id: str, text: str = "") -> TurnTicket | None:
        """``ADD gen 1``, and append the caller's ``text`` to the connection's unanswered messages
        (``pending``, cleared by the next claim): the ticket carries them and what the reply on the
        air has said, so the turn sees both even before their own items are stored.

        After an application reconnect, a message the previous socket already took (Twilio's
        replay) is refused once (``ReplayedMessageError``) and changes nothing. A turn that starts
        takes over what the previous socket owed (``owed``): its history holds those messages."""
        entry = {"L": [attr_s(text[:MAX_PENDING_CHARS])]}
        try:
            with store_errors("start_turn", passthrough=CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    # The caller spoke: a key entry still open is over (the model hears the words),
                    # and this turn takes over what a dropped socket owed.
                    UpdateExpression=(
                        "ADD gen :one SET pending = list_append(if_not_exists(pending, :none), :mine)"
                        " REMOVE keyEntry, keyDigits, owed"
                    ),
                    ConditionExpression=(
                        "attribute_exists(pk) AND #status = :open"
                        " AND (attribute_not_exists(pending) OR size(pending) < :cap)"
                        " AND (attribute_not_exists(replayGuard) OR NOT contains(replayGuard, :fp)"
                        " OR replayGuardUntil < :now)"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":one": attr_n(1),
                        ":open": attr_s("open"),
                        ":none": {"L": []},
                        ":mine": entry,
                        ":cap": attr_n(MAX_PENDING),
                        ":fp": attr_s(fingerprint(text)),
                        ":now": attr_n(int(self._now())),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )["Attributes"]
        except ClientError as exc:
            old = cast(dict[str, Any], exc.response.get("Item") or {})
            if get_s(old, "status") != "open":
                return None  # unknown or not open (no setup yet, ending, or after disconnect)
            if self._replayed(old, text):
                self._sockets.forget_replay(connection_id, text)
                raise ReplayedMessageError(connection_id) from exc
            item = self._restart_pending(connection_id, entry)  # a storm of unanswered prompts
        return ticket_from(connection_id, item)

    def _replayed(self, item: Item, text: str) -> bool:
        guard = item.get("replayGuard", {}).get("SS", [])
        return fingerprint(text) in guard and get_n(item, "replayGuardUntil") >= int(self._now())

    def _restart_pending(self, connection_id: str, entry: dict[str, Any]) -> Item:
        """``pending`` is full (callers who speak again and again before any reply is heard): keep
        only the newest message."""
        logger.info("unanswered caller messages past the cap; keeping the newest")
        with store_errors("start_turn", passthrough=CONDITION_FAILED):
            return cast(
                Item,
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one SET pending = :mine REMOVE keyEntry, keyDigits",
                    ConditionExpression="attribute_exists(pk) AND #status = :open",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":one": attr_n(1), ":open": attr_s("open"), ":mine": entry},
                    ReturnValues="ALL_NEW",
                )["Attributes"],
            )

    def claim_phrase(self, ticket: TurnTicket, spoken: str | None = None, *, final: bool = False) -> bool:
        """``spoken``: everything this turn will have sent once the claimed message is out; ``final``:
        the reply is stored and this is its closing frame. A newer turn reads both from its own
        ``start_turn`` (the reply it supersedes, as sent so far)."""
        update = "SET spokenGen = :g REMOVE pending"
        values: dict[str, Any] = {":g": attr_n(ticket.generation)}
        if spoken is not None:
            update = "SET spokenGen = :g, spokenText = :spoken REMOVE pending"
            values[":spoken"] = attr_s(spoken[:MAX_SPOKEN_CHARS])
        if final:
            update = update.replace(" REMOVE", ", spokenDone = :g REMOVE")
        try:
            with store_errors("claim_phrase", passthrough=CONDITION_FAILED):
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

    def mark_ending(self, ticket: TurnTicket, handoff: str | None = None, hold_s: float = 0.0) -> bool:
        """The turn decided to end the session (transfer or goodbye): if it is still the newest, the
        connection starts no new turn from now on, and the ``end`` to send is kept (True); if a newer
        one took over, nothing (False)."""
        end_after_ms = int((self._now() + hold_s) * 1000)
        try:
            with store_errors("mark_ending", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression="SET #status = :ending, endAfterMs = :after, endHandoff = :handoff",
                    ConditionExpression="#status = :open AND gen = :g",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":ending": attr_s("ending"),
                        ":open": attr_s("open"),
                        ":g": attr_n(ticket.generation),
                        ":after": attr_n(end_after_ms),
                        ":handoff": attr_s(handoff) if handoff is not None else {"NULL": True},
                    },
                )
        except ClientError:
            return False
        return True

    def pending_end(self, connection_id: str) -> PendingEnd | None:
        with store_errors("pending_end"):
            item = self._db.get_item(
                TableName=self._table,
                Key=conn_key(connection_id),
                ConsistentRead=True,
                ProjectionExpression="#status, endAfterMs, endHandoff, endSent",
                ExpressionAttributeNames={"#status": "status"},
            ).get("Item")
        if not item or "endAfterMs" not in item:
            return None
        return PendingEnd(
            handoff=get_s(item, "endHandoff") or None,
            due=int(self._now() * 1000) >= get_n(item, "endAfterMs"),
            sent="endSent" in item,
        )

    def claim_end(self, connection_id: str) -> bool:
        """The one right to send the ending session's ``end`` (the turn that decided it, the
        speaker event's invocation, or a timer's goodbye): True for exactly one caller."""
        try:
            with store_errors("claim_end", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="SET endSent = :now",
                    ConditionExpression="#status = :ending AND attribute_not_exists(endSent)",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":now": attr_n(int(self._now() * 1000)), ":ending": attr_s("ending")},
                )
        except ClientError:
            return False
        return True

    def record_interrupt(self, connection_id: str, heard: str, duration_ms: int | None) -> InterruptOutcome | None:
        cancelled = True
        old: dict[str, Any]
        try:
            with store_errors("record_interrupt", passthrough=CONDITION_FAILED):
                old = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="ADD gen :one",
                    ConditionExpression="attribute_exists(pk) AND gen = spokenGen",
                    ExpressionAttributeValues={":one": attr_n(1)},
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )["Attributes"]
        except ClientError as exc:
            # A newer prompt already holds the generation (it has not spoken yet): leave it
            # running; the interrupt belongs to the speech that is on the air.
            old = cast(dict[str, Any], exc.response.get("Item") or {})
            cancelled = False
        if not old or get_s(old, "status") == "connecting":
            return None  # no such socket, or one $connect noted that no setup has bound yet
        call_sid = get_s(old, "callSid")
        key = TurnKey(get_n(old, "connSeq"), get_n(old, "spokenGen"), INTERRUPTION_PART)
        if key.generation == GREETING_GENERATION and "replayGuardUntil" in old:
            # A socket Twilio reconnected by itself spoke no greeting: an interrupt before its first
            # reply is about the previous socket's speech (already marked) or is a replay.
            return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)
        if not heard.strip() and (not cancelled or on_air_from(old).done):
            # Nothing heard, said of a reply that was sent in full or that a newer prompt already
            # took over from: it cannot tell what the caller missed, so it must not erase the reply.
            return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)
        now = self._now()
        item: Item = {
            PARTITION_KEY: attr_s(f"CALL#{call_sid}"),
            SORT_KEY: attr_s(key.sort_key),
            "role": attr_s("interruption"),
            "heard": attr_s(heard),
            "at": attr_n(int(now)),
            "atMs": attr_n(int(now * 1000)),
            TTL_ATTRIBUTE: attr_n(int(now) + self._retention_s),
        }
        if duration_ms is not None:
            item["durationMs"] = attr_n(duration_ms)
        with store_errors("record_interrupt.marker"):
            self._db.put_item(TableName=self._table, Item=item)
        return InterruptOutcome(call_sid=call_sid, interrupted=key, cancelled=cancelled)

    def set_language(self, ticket: TurnTicket, language: str) -> None:
        """The call switched language: this socket's next turns read it from the connection item,
        and a socket that resumes the call from the call item (``setup`` copies it over)."""
        try:
            with store_errors("set_language", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(ticket.connection_id),
                    UpdateExpression="SET #language = :language",
                    ConditionExpression="attribute_exists(pk)",  # never an item without its TTL
                    ExpressionAttributeNames={"#language": "language"},
                    ExpressionAttributeValues={":language": attr_s(language)},
                )
        except ClientError:
            pass  # the connection item is gone: only the call keeps the language
        self._update_call(
            ticket.call_sid,
            "set_language",
            "#language = :language",
            {":language": attr_s(language)},
            {"#language": "language"},
        )

    def close_connection(self, connection_id: str, *, gone: bool, code: int | None = None) -> str | None:
        """Mark the connection closed (``$disconnect``, with its close ``code``) or gone (a post got
        410); returns its call. A normal close (1000) is a hang-up or an ``end``, not a drop."""
        update = "SET #status = :status, closedAt = :now"
        values: dict[str, Any] = {":status": attr_s("gone" if gone else "closed"), ":now": attr_n(int(self._now()))}
        if code is not None:
            update += ", closeCode = :code"
            values[":code"] = attr_n(code)
        try:
            with store_errors("close_connection", passthrough=CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ClientError:
            return None
        return get_s(item, "callSid") or None

    def closed_normally(self, connection_id: str) -> bool:
        """Whether ``$disconnect`` reported a normal close (1000) for the connection (so far)."""
        with store_errors("closed_normally"):
            item = self._db.get_item(
                TableName=self._table,
                Key=conn_key(connection_id),
                ConsistentRead=True,
                ProjectionExpression="closeCode",
            ).get("Item")
        return bool(item) and get_n(item or {}, "closeCode", -1) == NORMAL_CLOSE

    def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
        with store_errors("load_history"):
            items = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
                ExpressionAttributeValues={":pk": attr_s(f"CALL#{call_sid}"), ":turn": attr_s("TURN#")},
                ScanIndexForward=False,
                Limit=max_items,
                ConsistentRead=True,
            )["Items"]
        now = int(self._now())
        records = [turn_record(i) for i in reversed(items) if get_n(i, TTL_ATTRIBUTE, now + 1) > now]
        return records

    def put_turns(self, call_sid: str, records: Sequence[TurnRecord]) -> None:
        if not records:
            return
        now = self._now()
        items = [turn_item(call_sid, r, now, int(now) + self._retention_s) for r in records]
        with store_errors("put_turns"):
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


__all__ = ["CONNECTION_TTL_S", "FIRST_AGENT_PART", "DynamoSessionStore", "call_key", "conn_key"]
