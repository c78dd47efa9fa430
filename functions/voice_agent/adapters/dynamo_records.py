"""The call record's side of the session store: what the record builder reads, the claim that makes
one builder at a time do the work, and what the webhook notes for it (a transfer's reason and dial
result, a voicemail).

Call item attributes added here: ``fromNumber``, ``toNumber`` (set at setup, ``dynamo_calls``),
``transferReason``, ``dialResult``, ``dialDurationS``, ``recordClaim`` / ``recordClaimUntil`` (a
builder's lease), ``recordedAt`` and ``recordLocation`` (the record exists: later requests stop).
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_calls import CallItems
from voice_agent.adapters.dynamo_items import (
    CONDITION_FAILED,
    attr_n,
    attr_s,
    call_key,
    get_n,
    get_s,
    store_errors,
    turn_record,
)
from voice_agent.core.model import CallFacts, TurnRecord
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER
from voice_agent.table_schema import TTL_ATTRIBUTE

# A call's turn items, page by page: 1 MB a page, so 50 pages is far more than any call holds.
MAX_TURN_PAGES: Final = 50


class RecordItems(CallItems):
    def call_facts(self, call_sid: str) -> CallFacts | None:
        with store_errors("call_facts"):
            item = self._db.get_item(TableName=self._table, Key=call_key(call_sid), ConsistentRead=True).get("Item")
        if not item:
            return None
        params = item.get("customParameters", {}).get("M", {})
        return CallFacts(
            call_sid=call_sid,
            status=get_s(item, "status"),
            direction=get_s(item, "direction"),
            from_number=get_s(item, "fromNumber"),
            to_number=get_s(item, "toNumber"),
            created_at=get_n(item, "createdAt") or None,
            ended_at=get_n(item, "endedAt") or None,
            reconnects=get_n(item, "reconnects"),
            end_reason=get_s(item, "endReason") or None,
            language=get_s(item, "language") or None,
            dial_result=get_s(item, "dialResult") or None,
            dial_duration_s=get_n(item, "dialDurationS") if "dialDurationS" in item else None,
            transfer_reason=get_s(item, "transferReason") or None,
            parameters={k: v.get("S", "") for k, v in params.items() if k != CALL_TOKEN_PARAMETER},
            recorded_at=get_n(item, "recordedAt") or None,
            record_location=get_s(item, "recordLocation") or None,
        )

    def all_turns(self, call_sid: str) -> list[TurnRecord]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :turn)",
            "ExpressionAttributeValues": {":pk": attr_s(f"CALL#{call_sid}"), ":turn": attr_s("TURN#")},
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        for _ in range(MAX_TURN_PAGES):
            with store_errors("all_turns"):
                page = self._db.query(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        now = int(self._now())
        return [turn_record(i) for i in items if get_n(i, TTL_ATTRIBUTE, now + 1) > now]

    def claim_record(self, call_sid: str, owner: str, lease_s: int) -> bool:
        now = int(self._now())
        try:
            with store_errors("claim_record", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression="SET recordClaim = :owner, recordClaimUntil = :until",
                    ConditionExpression=(
                        "attribute_exists(pk) AND attribute_not_exists(recordedAt)"
                        " AND (attribute_not_exists(recordClaimUntil) OR recordClaimUntil < :now)"
                    ),
                    ExpressionAttributeValues={
                        ":owner": attr_s(owner),
                        ":until": attr_n(now + lease_s),
                        ":now": attr_n(now),
                    },
                )
        except ClientError:
            return False
        return True

    def release_record(self, call_sid: str, owner: str) -> None:
        try:
            with store_errors("release_record", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression="REMOVE recordClaim, recordClaimUntil",
                    ConditionExpression="recordClaim = :owner",
                    ExpressionAttributeValues={":owner": attr_s(owner)},
                )
        except ClientError:
            pass  # another builder's claim by now: leave it

    def mark_recorded(self, call_sid: str, owner: str, location: str) -> None:
        now = int(self._now())
        with store_errors("mark_recorded"):
            self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression="SET recordedAt = :now, recordLocation = :where REMOVE recordClaim, recordClaimUntil",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": attr_n(now), ":where": attr_s(location)},
            )

    # -- what the webhook notes -----------------------------------------------------------------

    def note_transfer(self, call_sid: str, reason_code: str) -> None:
        self._update_call(call_sid, "note_transfer", "transferReason = :reason", {":reason": attr_s(reason_code[:64])})

    def set_dial_result(self, call_sid: str, status: str, duration_s: int | None) -> None:
        assignment, values = "dialResult = :status", {":status": attr_s(status[:32])}
        if duration_s is not None:
            assignment += ", dialDurationS = :duration"
            values[":duration"] = attr_n(duration_s)
        self._update_call(call_sid, "set_dial_result", assignment, values)

    def mark_voicemail(self, call_sid: str, *, direction: str, from_number: str, to_number: str) -> None:
        """An outbound call a machine answered: the agent left the voicemail line (no socket, no
        end callback), so ``/voice`` ends the call here."""
        now = int(self._now())
        self._update_call(
            call_sid,
            "mark_voicemail",
            "#status = :voicemail, createdAt = if_not_exists(createdAt, :now), endedAt = :now, updatedAt = :now,"
            " direction = if_not_exists(direction, :direction), fromNumber = if_not_exists(fromNumber, :from),"
            " toNumber = if_not_exists(toNumber, :to)",
            {
                ":voicemail": attr_s("voicemail"),
                ":now": attr_n(now),
                ":direction": attr_s(direction),
                ":from": attr_s(from_number),
                ":to": attr_s(to_number),
            },
            {"#status": "status"},
        )
