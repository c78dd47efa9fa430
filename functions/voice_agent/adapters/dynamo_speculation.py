"""The speculation's side of the session store (``core/speculation.py``): one slot on the
connection item, written with conditions so the speculating invocation and the final prompt's
decide from the same state (``core/speculation_rules.py``).

Connection item attributes: ``specId`` (who holds the slot), ``specFp`` (the fingerprint of the
words it answers), ``specGen`` (the generation it was opened at; the final prompt's turn takes the
next one) and ``specUntil`` (epoch seconds after which a slot left by an invocation that died may
be replaced).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_calls import CallItems
from voice_agent.adapters.dynamo_items import (
    CONDITION_FAILED,
    attr_n,
    attr_s,
    conn_key,
    store_errors,
    ticket_from,
)
from voice_agent.core.model import GREETING_GENERATION, TurnTicket

_SLOT = "specId, specFp, specGen, specUntil"


class SpeculationItems(CallItems):
    def open_speculation(self, connection_id: str, spec_id: str, fp: str, hold_s: float) -> TurnTicket | None:
        """Register a speculation on the words with fingerprint ``fp``; returns the connection as it
        then stands (its ``gen`` is the generation opened at), or ``None`` when refused: the socket is
        not open, a turn is under way (unanswered words), the reply on the air is still being sent,
        or a speculation on the same words (or one a final prompt already took over) holds the slot.
        A slot holding other words at the same generation is replaced: the caller changed them."""
        now = self._now()
        try:
            with store_errors("open_speculation", passthrough=CONDITION_FAILED):
                item = self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression="SET specId = :id, specFp = :fp, specGen = gen, specUntil = :until",
                    ConditionExpression=(
                        "#status = :open AND attribute_not_exists(pending)"
                        " AND (spokenDone = spokenGen OR gen <> spokenGen OR spokenGen = :greeting)"
                        " AND (attribute_not_exists(specId) OR (specGen = gen AND specFp <> :fp)"
                        " OR specUntil < :now)"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":id": attr_s(spec_id),
                        ":fp": attr_s(fp),
                        ":until": attr_n(int(now + hold_s) + 1),
                        ":now": attr_n(int(now)),
                        ":open": attr_s("open"),
                        ":greeting": attr_n(GREETING_GENERATION),
                    },
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ClientError:
            return None
        return ticket_from(connection_id, item)

    def read_connection(self, connection_id: str) -> TurnTicket | None:
        """The connection item as it stands (a consistent read): ``None`` if gone or not open."""
        with store_errors("read_connection"):
            item = self._db.get_item(TableName=self._table, Key=conn_key(connection_id), ConsistentRead=True).get(
                "Item"
            )
        if not item or item.get("status", {}).get("S") != "open":
            return None
        return ticket_from(connection_id, item)

    def close_speculation(self, connection_id: str, spec_id: str, *, unless_past: int | None = None) -> bool:
        """Remove this speculation's slot. ``unless_past``: only while no turn has taken a generation
        after it (giving up must not race a final prompt that has just handed the turn over):
        False when one has, and the slot stays for the speculator to read."""
        condition = "specId = :id"
        values: dict[str, Any] = {":id": attr_s(spec_id)}
        if unless_past is not None:
            condition += " AND gen = :g"
            values[":g"] = attr_n(unless_past)
        try:
            with store_errors("close_speculation", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression=f"REMOVE {_SLOT}",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
        except ClientError:
            return False
        return True

    def cancel_speculation(self, connection_id: str, fp: str) -> bool:
        """A partial with other words: remove a speculation on different words that no final prompt
        has taken over (one at the current generation). True if one was removed."""
        try:
            with store_errors("cancel_speculation", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection_id),
                    UpdateExpression=f"REMOVE {_SLOT}",
                    ConditionExpression="attribute_exists(specId) AND specGen = gen AND specFp <> :fp",
                    ExpressionAttributeValues={":fp": attr_s(fp)},
                )
        except ClientError:
            return False
        return True
