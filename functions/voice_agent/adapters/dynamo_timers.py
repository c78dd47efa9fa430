"""The timers' and key entry's side of the session store: each decision is one conditional write on
the connection item (``core/silence.py``, ``core/key_entry.py``).

Connection item attributes added here: ``keyEntry`` (a map: ``id``, the generation of the turn
that asked; ``count``, keys wanted or 0 for "until #"; ``reprompts``), ``keyDigits`` (the keys so
far, a list). A timer that ends the call claims its ``end`` as a turn does (``claim_end``). Call
item: ``endReason`` (``no_response``, ``time_limit``) and the status ``cut_off``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_calls import CallItems
from voice_agent.adapters.dynamo_context import context_from
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
from voice_agent.core.model import CallWatch, KeyState, QuietTurn, TurnTicket


class TimerItems(CallItems):
    # -- key entry ------------------------------------------------------------------------------

    def start_key_entry(self, ticket: TurnTicket, count: int) -> bool:
        spec = {"M": {"id": attr_n(ticket.generation), "count": attr_n(count), "reprompts": attr_n(0)}}
        return (
            self._conditional(
                "start_key_entry",
                ticket.connection_id,
                "SET keyEntry = :spec, keyDigits = :none",
                "gen = :g AND #status = :open",
                {":spec": spec, ":none": {"L": []}, ":g": attr_n(ticket.generation)},
            )
            is not None
        )

    def add_key(self, connection_id: str, key: str, max_keys: int) -> KeyState | None:
        item = self._conditional(
            "add_key",
            connection_id,
            "ADD gen :one SET keyDigits = list_append(keyDigits, :key)",
            "attribute_exists(keyEntry) AND #status = :open AND size(keyDigits) < :cap",
            {":one": attr_n(1), ":key": {"L": [attr_s(key)]}, ":cap": attr_n(max_keys + 1)},
        )
        if item is None:
            return None
        spec = item.get("keyEntry", {}).get("M", {})
        return KeyState(
            call_sid=get_s(item, "callSid"),
            entry=get_n(spec, "id"),
            generation=get_n(item, "gen"),
            count=get_n(spec, "count"),
            reprompts=get_n(spec, "reprompts"),
            keys=_keys(item),
            language=get_s(item, "language") or None,
            agent=_agent_of(item),
        )

    def close_key_entry(self, connection_id: str, entry: int, gen: int | None = None) -> tuple[str, ...] | None:
        condition = "keyEntry.id = :entry"
        values: dict[str, Any] = {":entry": attr_n(entry)}
        if gen is not None:
            condition += " AND gen = :g AND #status = :open"
            values[":g"] = attr_n(gen)
        old = self._conditional(
            "close_key_entry", connection_id, "REMOVE keyEntry, keyDigits", condition, values, returns="ALL_OLD"
        )
        return None if old is None else _keys(old)

    # -- lines a timer says ---------------------------------------------------------------------

    def take_quiet_turn(
        self, connection_id: str, gen: int, spoken: str, *, ending: bool = False, key_entry: int | None = None
    ) -> QuietTurn | None:
        update = "SET gen = :next, spokenGen = :next, spokenDone = :next, spokenText = :spoken"
        condition = "gen = :g AND #status = :open"
        values: dict[str, Any] = {":next": attr_n(gen + 1), ":g": attr_n(gen), ":spoken": attr_s(spoken)}
        if ending:
            update += ", #status = :ending"
            values[":ending"] = attr_s("ending")
        if key_entry is not None:
            update += ", keyEntry.reprompts = keyEntry.reprompts + :one"
            condition += " AND keyEntry.id = :entry"
            values.update({":entry": attr_n(key_entry), ":one": attr_n(1)})
        item = self._conditional("take_quiet_turn", connection_id, update, condition, values)
        return None if item is None else _quiet(item)

    def end_for_time_limit(self, connection_id: str, spoken: str) -> QuietTurn | None:
        """Whatever is on the air: its next claim fails once the generation moves."""
        item = self._conditional(
            "end_for_time_limit",
            connection_id,
            "SET gen = gen + :one, spokenGen = gen + :one, spokenDone = gen + :one, spokenText = :spoken,"
            " #status = :ending",
            "#status = :open",
            {":one": attr_n(1), ":spoken": attr_s(spoken), ":ending": attr_s("ending")},
        )
        return None if item is None else _quiet(item)

    # -- the call -------------------------------------------------------------------------------

    def set_end_reason(self, call_sid: str, reason: str) -> None:
        """The agent ends the call: why (the record's outcome), and that the goodbye was said
        (``/action`` then just hangs up)."""
        self._update_call(
            call_sid, "set_end_reason", "endReason = :reason, farewellSpoken = :yes",
            {":reason": attr_s(reason), ":yes": {"BOOL": True}},
        )  # fmt: skip

    def watch_call(self, call_sid: str) -> CallWatch | None:
        with store_errors("watch_call"):
            call = self._db.get_item(TableName=self._table, Key=call_key(call_sid), ConsistentRead=True).get("Item")
        if not call:
            return None
        connection_id = get_s(call, "lastConnection") or None
        conn: Item = {}
        if connection_id is not None:
            with store_errors("watch_call"):
                conn = self._db.get_item(TableName=self._table, Key=conn_key(connection_id), ConsistentRead=True).get(
                    "Item", {}
                )
        return CallWatch(
            status=get_s(call, "status"),
            connection_id=connection_id,
            connection_status=get_s(conn, "status") or None,
            closed_at=get_n(conn, "closedAt") or None,
            language=get_s(conn, "language") or get_s(call, "language") or None,
            ended_at=get_n(call, "endedAt") or None,
            recorded="recordedAt" in call,
        )

    def mark_cut_off(self, call_sid: str) -> bool:
        now = int(self._now())
        try:
            with store_errors("mark_cut_off", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression="SET #status = :cut, endedAt = :now, updatedAt = :now",
                    ConditionExpression="#status = :active",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":cut": attr_s("cut_off"),
                        ":active": attr_s("active"),
                        ":now": attr_n(now),
                    },
                )
        except ClientError:
            return False
        return True

    # -- helpers --------------------------------------------------------------------------------

    def _conditional(
        self,
        operation: str,
        connection_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        *,
        returns: str = "ALL_NEW",
    ) -> Item | None:
        """One conditional update of the connection item: its attributes, or ``None`` if the
        condition failed (something happened since, or the item is not there)."""
        values.setdefault(":open", attr_s("open"))
        names = {"#status": "status"} if "#status" in update + condition else {}
        if ":open" not in condition:
            values.pop(":open")
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": conn_key(connection_id),
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(pk) AND {condition}",
            "ExpressionAttributeValues": values,
            "ReturnValues": returns,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            with store_errors(operation, passthrough=CONDITION_FAILED):
                response = self._db.update_item(**request)
        except ClientError:
            return None
        return dict(response.get("Attributes", {}))


def _keys(item: Item) -> tuple[str, ...]:
    return tuple(v["S"] for v in item.get("keyDigits", {}).get("L", []) if "S" in v)


def _quiet(item: Item) -> QuietTurn:
    return QuietTurn(
        call_sid=get_s(item, "callSid"),
        conn_seq=get_n(item, "connSeq", 1),
        generation=get_n(item, "gen"),
        language=get_s(item, "language") or None,
    )


def _agent_of(item: Item) -> str | None:
    context = context_from(item)
    return context.agent if context is not None and context.agent else None
