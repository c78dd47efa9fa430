"""A call's sockets in the session table: what ``$connect`` notes about a socket before any setup,
and the handover from one socket of a call to the next (``/action``'s resume, or Twilio's
application reconnect). ``CallItems`` (``dynamo_calls.py``) binds; this module does the rest.

On a handover the previous socket is frozen in one write (its generation bumped, so a turn still
streaming there stops at its next claim; its status ``gone``), and what it was still sending is
marked as heard. After an application reconnect the new socket also gets:

- ``owed``: the caller's messages the previous socket never answered (empty: its reply was cut after
  it began); the relay answers them on the new socket without the caller repeating anything;
- ``replayGuard`` (fingerprints of the caller's last messages there) until ``replayGuardUntil``:
  Twilio replays what it buffered during the drop (up to 500 events), and a message the previous
  socket already took must not become a second turn or a second unanswered message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import ClientError

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
from voice_agent.core.model import GREETING_GENERATION, INTERRUPTION_PART, TurnKey
from voice_agent.core.replay import fingerprint
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_S: Final = 24 * 3600  # a connection lives at most 2 h; keep its item a day for debugging
REPLAY_WINDOW_S: Final = 30  # how long after an application reconnect replayed messages are expected
_RECENT_S: Final = 120  # the previous socket's caller messages this recent may be replayed
_RECENT_ITEMS: Final = 16


@dataclass(frozen=True, slots=True)
class Handover:
    app_reconnect: bool  # the new socket continues the previous one's <Connect> (no new greeting)
    owed: bool  # a turn the previous socket never answered is owed on the new one


class SocketItems:
    def __init__(
        self, *, client: DynamoDBClient, table_name: str, retention_s: int, now: Callable[[], float] = time.time
    ) -> None:
        self._db = client
        self._table = table_name
        self._retention_s = retention_s
        self._now = now

    # -- $connect --------------------------------------------------------------------------------

    def prebind(self, connection_id: str, call_sid: str, session: int) -> bool:
        """Note the call a socket belongs to (status ``connecting``: no setup yet), and whether it is
        a second socket of the same ``<Connect>`` (``session``): Twilio's application reconnect.
        Two requests: the call counts the upgrade, the connection item is created."""
        now = int(self._now())
        with store_errors("prebind_connection"):
            old = self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression=(
                    "ADD upgradedSessions :session SET lastUpgrade = :cid, #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":session": {"SS": [str(session)]},
                    ":cid": attr_s(connection_id),
                    ":ttl": attr_n(now + self._retention_s),
                },
                ReturnValues="ALL_OLD",  # (UPDATED_OLD may leave out a set the ADD did not change)
            ).get("Attributes", {})
        reconnect = str(session) in old.get("upgradedSessions", {}).get("SS", [])
        try:
            with store_errors("prebind_connection", passthrough=CONDITION_FAILED):
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        **conn_key(connection_id),
                        "callSid": attr_s(call_sid),
                        "status": attr_s("connecting"),
                        "appReconnect": {"BOOL": reconnect},
                        "createdAt": attr_n(now),
                        TTL_ATTRIBUTE: attr_n(now + CONNECTION_TTL_S),
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ClientError:
            logger.warning("connection already exists at $connect; left as it is")
        return reconnect

    def latest_upgrade(self, call_sid: str) -> str | None:
        """The call's latest socket, as ``$connect`` noted it (the one Twilio reconnected, if it did)."""
        with store_errors("latest_upgrade"):
            item = self._db.get_item(
                TableName=self._table, Key=call_key(call_sid), ConsistentRead=True, ProjectionExpression="lastUpgrade"
            ).get("Item")
        return get_s(item, "lastUpgrade") or None if item else None

    def noted(self, connection_id: str) -> Item | None:
        """The note ``$connect`` left for a socket no setup has bound yet, if it is one."""
        with store_errors("adopt_connection"):
            item = self._db.get_item(TableName=self._table, Key=conn_key(connection_id), ConsistentRead=True).get(
                "Item"
            )
        return item if item and get_s(item, "status") == "connecting" else None

    # -- the handover -----------------------------------------------------------------------------

    def hand_over(self, call_sid: str, previous: str, new: str, *, session_id: str, app_reconnect: bool) -> Handover:
        """The call moved from socket ``previous`` to ``new``: freeze the previous one, mark what it
        was still sending, and after an application reconnect (told by ``$connect``'s note, or by
        a setup repeating the previous socket's ``sessionId``) set up what the new socket owes."""
        try:
            old = self._freeze(previous) if app_reconnect else self._mark_later(previous, new)
            if not app_reconnect and session_id and get_s(old, "sessionId") == session_id:
                app_reconnect = True  # the same session on a new socket: Twilio reopened it
                old = self._freeze(previous)
        except (ClientError, StoreUnavailableError):
            logger.info("the previous socket could not be read")
            return Handover(app_reconnect=app_reconnect, owed=False)
        self._keep_what_was_sent(call_sid, old)
        if not app_reconnect:
            return Handover(app_reconnect=False, owed=False)
        owed = _owed(old)
        try:
            self._guard_replays(call_sid, new, old, owed)
        except StoreUnavailableError:
            logger.warning("replay guard not stored; replayed messages may be answered twice")
            return Handover(app_reconnect=True, owed=False)
        return Handover(app_reconnect=True, owed=owed is not None)

    def _mark_later(self, previous: str, new: str) -> Item:
        """One write, the read it replaces: the previous socket, as it was, now noting that a later
        socket of the call exists (``laterSocket``). It stays usable; only a history its environment
        kept is no longer trusted (``core/history_cache.py``), since the later socket's turns do not
        move its generation."""
        with store_errors("bind_connection.previous", passthrough=CONDITION_FAILED):
            return cast(
                Item,
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(previous),
                    UpdateExpression="SET laterSocket = :new",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":new": attr_s(new)},
                    ReturnValues="ALL_OLD",
                ).get("Attributes", {}),
            )

    def _freeze(self, previous: str) -> Item:
        """One write: the previous socket's generation moves on (a turn streaming there stops at its
        next claim and keeps what it had sent) and it starts no turn again. Returns it as it was."""
        with store_errors("bind_connection.previous", passthrough=CONDITION_FAILED):
            return cast(
                Item,
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(previous),
                    UpdateExpression="ADD gen :one SET #status = :gone",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":one": attr_n(1), ":gone": attr_s("gone")},
                    ReturnValues="ALL_OLD",
                )["Attributes"],
            )

    def _keep_what_was_sent(self, call_sid: str, old: Item) -> None:
        """A reply the old socket was still speaking stores its text only when it notices, perhaps
        after this call's next turn read the history. Mark what it had sent now (best effort; an
        ``interrupt`` marker already there wins)."""
        on_air = on_air_from(old)
        if on_air.done or on_air.generation <= GREETING_GENERATION or not on_air.text.strip():
            return
        key = TurnKey(get_n(old, "connSeq"), on_air.generation, INTERRUPTION_PART)
        now = self._now()
        try:
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

    def _guard_replays(self, call_sid: str, new: str, old: Item, owed: list[str] | None) -> None:
        """The new socket refuses, for ``REPLAY_WINDOW_S``, caller messages the previous one took:
        its unanswered ones and its latest stored ones (one query). One write."""
        texts = [*_pending(old), *self._recent_caller_texts(call_sid, get_n(old, "connSeq"))]
        now = int(self._now())
        update = "SET replayGuardUntil = :until"
        values: dict[str, Any] = {":until": attr_n(now + REPLAY_WINDOW_S)}
        if texts:
            update += ", replayGuard = :guard"
            values[":guard"] = {"SS": sorted({fingerprint(t) for t in texts})}
        if owed is not None:
            update += ", owed = :owed"
            values[":owed"] = {"L": [attr_s(t) for t in owed]}
        with store_errors("bind_connection.guard"):
            self._db.update_item(
                TableName=self._table,
                Key=conn_key(new),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=values,
            )

    def _recent_caller_texts(self, call_sid: str, conn_seq: int) -> list[str]:
        with store_errors("bind_connection.recent"):
            items = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :turns)",
                ExpressionAttributeValues={
                    ":pk": attr_s(f"CALL#{call_sid}"),
                    ":turns": attr_s(f"TURN#{conn_seq:04d}#"),
                },
                ScanIndexForward=False,
                Limit=_RECENT_ITEMS,
                ConsistentRead=True,
            )["Items"]
        since_ms = int((self._now() - _RECENT_S) * 1000)
        return [get_s(i, "text") for i in items if get_s(i, "role") == "user" and get_n(i, "atMs") >= since_ms]

    # -- what the new socket owes ------------------------------------------------------------------

    def take_owed(self, connection_id: str) -> tuple[str, ...] | None:
        """The turn owed on this socket, once (the first to ask takes it): the caller's unanswered
        messages, empty if the cut reply's question is already stored; ``None``: nothing owed."""
        try:
            with store_errors("take_owed", passthrough=CONDITION_FAILED):
                old = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="REMOVE owed",
                    ConditionExpression="attribute_exists(owed)",
                    ReturnValues="ALL_OLD",
                )["Attributes"]
        except ClientError:
            return None
        return tuple(v["S"] for v in old.get("owed", {}).get("L", []) if "S" in v)

    def forget_replay(self, connection_id: str, text: str) -> None:
        """A replayed message was refused once: the same words again are the caller's own."""
        try:
            with store_errors("start_turn.replay", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="DELETE replayGuard :fp",
                    ConditionExpression="attribute_exists(pk)",  # never an item without its TTL
                    ExpressionAttributeValues={":fp": {"SS": [fingerprint(text)]}},
                )
        except (ClientError, StoreUnavailableError):
            logger.info("replay guard not updated")


def _pending(old: Item) -> list[str]:
    return [v["S"] for v in old.get("pending", {}).get("L", []) if "S" in v and v["S"].strip()]


def _owed(old: Item) -> list[str] | None:
    """What the previous socket left unanswered: its pending caller messages; or, if its reply had
    begun and was cut (not by an interrupt: the generation is still the one on the air), nothing to
    add (the question is stored) but a turn still owed. ``None``: nothing owed (answered, ending)."""
    if get_s(old, "status") == "ending":
        return None  # it was ending the session (a transfer, a goodbye)
    pending = _pending(old)
    if pending:
        return pending
    on_air = on_air_from(old)
    cut = on_air.generation > GREETING_GENERATION and get_n(old, "gen") == on_air.generation and not on_air.done
    return [] if cut else None
