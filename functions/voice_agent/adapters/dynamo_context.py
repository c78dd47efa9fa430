"""The call context on the session table: written by ``setup`` on the connection item (``ctx``), so
every turn's ``start_turn`` reads it back in the request it makes anyway; and the start-of-call
hook's claim and result on the call item (``hookState``, ``hookResult``), copied to the call's
current connection item, and by a resumed socket's ``setup`` to its own.

Bounded: the parameters as ``protocol/parameters.py`` bounds them, the hook's values as
``core/start_hook.py`` does, so the connection item every phrase's claim rewrites stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from voice_agent.adapters.dynamo_items import (
    CONDITION_FAILED,
    Item,
    attr_n,
    attr_s,
    call_key,
    conn_key,
    get_s,
    store_errors,
)
from voice_agent.core.call_context import CallContext
from voice_agent.core.routing import AGENT_PARAMETER
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.parameters import bounded_parameters
from voice_agent.table_schema import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONTEXT_ATTRIBUTE = "ctx"
HOOK_RESULT = "hookResult"


def context_attribute(setup: Setup, call_item: Mapping[str, Any]) -> Item:
    """The connection item's ``ctx``: this setup's numbers, direction, agent and parameters (what the
    call item kept, for a setup that lacks them), and the hook result the call already has (a
    resumed socket)."""
    params, _ = bounded_parameters(setup.custom_parameters or _plain(call_item.get("customParameters")))
    agent = params.pop(AGENT_PARAMETER, "")
    value: Item = {
        "from": attr_s(setup.from_number or get_s(call_item, "fromNumber")),
        "to": attr_s(setup.to_number or get_s(call_item, "toNumber")),
        "agent": attr_s(agent),
        "params": _string_map(params),
    }
    hook = call_item.get(HOOK_RESULT)
    if hook and "M" in hook:
        value["hook"] = hook
    return {CONTEXT_ATTRIBUTE: {"M": value}}


def context_from(item: Mapping[str, Any]) -> CallContext | None:
    """The call context a connection item carries (``None``: bound before contexts were stored)."""
    raw = item.get(CONTEXT_ATTRIBUTE, {}).get("M")
    if raw is None:
        return None
    return CallContext(
        call_sid=get_s(item, "callSid"),
        agent=get_s(raw, "agent"),
        caller=get_s(raw, "from"),
        called=get_s(raw, "to"),
        direction=get_s(item, "direction"),
        language=get_s(item, "language") or None,
        parameters=_plain(raw.get("params")),
        hook=_plain(raw.get("hook")),
    )


def _string_map(values: Mapping[str, str]) -> dict[str, Any]:
    return {"M": {k: attr_s(v) for k, v in values.items()}}


def _plain(value: Mapping[str, Any] | None) -> dict[str, str]:
    if not value or "M" not in value:
        return {}
    return {k: v["S"] for k, v in value["M"].items() if "S" in v}


class ContextItems:
    """The hook's side of ``DynamoSessionStore`` (``core/start_hook.py`` ``HookStore``)."""

    _db: DynamoDBClient
    _table: str
    _retention_s: int
    _now: Callable[[], float]

    def claim_start_hook(self, call_sid: str) -> bool:
        now = int(self._now())
        try:
            with store_errors("claim_start_hook", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=call_key(call_sid),
                    UpdateExpression="SET hookState = :running, hookAt = :now, #ttl = if_not_exists(#ttl, :ttl)",
                    ConditionExpression="attribute_not_exists(hookState)",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":running": attr_s("running"),
                        ":now": attr_n(now),
                        ":ttl": attr_n(now + self._retention_s),
                    },
                )
        except ClientError:
            return False
        return True

    def save_hook_result(self, call_sid: str, values: Mapping[str, str]) -> None:
        result = _string_map(values)
        with store_errors("save_hook_result"):
            call = self._db.update_item(
                TableName=self._table,
                Key=call_key(call_sid),
                UpdateExpression="SET hookState = :done, #result = :result",
                ExpressionAttributeNames={"#result": HOOK_RESULT},
                ExpressionAttributeValues={":done": attr_s("done"), ":result": result},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        connection = get_s(call, "lastConnection")
        if not connection:
            return
        try:
            with store_errors("save_hook_result.connection", passthrough=CONDITION_FAILED):
                self._db.update_item(
                    TableName=self._table,
                    Key=conn_key(connection),
                    UpdateExpression="SET #ctx.#hook = :result",
                    ConditionExpression="attribute_exists(#ctx)",
                    ExpressionAttributeNames={"#ctx": CONTEXT_ATTRIBUTE, "#hook": "hook"},
                    ExpressionAttributeValues={":result": result},
                )
        except ClientError:
            logger.info("the call's connection carries no context; the hook result stays on the call")
