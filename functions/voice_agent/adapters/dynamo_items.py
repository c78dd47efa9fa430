"""DynamoDB items of the session table as this project writes them: attribute values, keys, and the
conversions between items and the core's values (``table_schema`` has the table's shape; the store
in ``dynamo_store.py`` the requests)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.core.model import GREETING_GENERATION, OnAir, SpecSlot, ToolCall, TurnKey, TurnRecord, TurnTicket
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE

CONDITION_FAILED: Final = "ConditionalCheckFailedException"

Item = dict[str, Any]


def attr_s(value: str) -> dict[str, str]:
    return {"S": value}


def attr_n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def get_s(item: Mapping[str, Any], name: str, default: str = "") -> str:
    v = item.get(name)
    return v["S"] if v and "S" in v else default


def get_n(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    v = item.get(name)
    return int(v["N"]) if v and "N" in v else default


def conn_key(connection_id: str) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: attr_s(f"CONN#{connection_id}"), SORT_KEY: attr_s("CONN")}


def call_key(call_sid: str) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: attr_s(f"CALL#{call_sid}"), SORT_KEY: attr_s("CALL")}


def ticket_from(connection_id: str, item: Mapping[str, Any]) -> TurnTicket:
    from voice_agent.adapters.dynamo_context import context_from  # it builds on this module

    pending = item.get("pending", {}).get("L", [])
    return TurnTicket(
        connection_id=connection_id,
        call_sid=get_s(item, "callSid"),
        conn_seq=get_n(item, "connSeq"),
        generation=get_n(item, "gen"),
        language=get_s(item, "language") or None,
        direction=get_s(item, "direction"),
        on_air=on_air_from(item),
        unanswered=tuple(v["S"] for v in pending if "S" in v),
        context=context_from(item),
        spec=spec_from(item),
        later_socket="laterSocket" in item,
    )


def spec_from(item: Mapping[str, Any]) -> SpecSlot | None:
    if "specId" not in item:
        return None
    return SpecSlot(get_s(item, "specId"), get_s(item, "specFp"), get_n(item, "specGen", -1))


def on_air_from(item: Mapping[str, Any]) -> OnAir:
    generation = get_n(item, "spokenGen")
    return OnAir(
        generation=generation,
        text=get_s(item, "spokenText"),
        done=generation > GREETING_GENERATION and get_n(item, "spokenDone", -1) == generation,
    )


def turn_item(call_sid: str, r: TurnRecord, now: float, expires: int) -> Item:
    item: Item = {
        PARTITION_KEY: attr_s(f"CALL#{call_sid}"),
        SORT_KEY: attr_s(r.key.sort_key),
        "role": attr_s(r.role),
        "text": attr_s(r.text),
        "at": attr_n(int(now)),
        "atMs": attr_n(int(now * 1000)),
        TTL_ATTRIBUTE: attr_n(expires),
    }
    if r.tool_calls:
        item["toolCalls"] = attr_s(json.dumps([[c.id, c.name, c.arguments] for c in r.tool_calls]))
    if r.tool_call_id:
        item["toolCallId"] = attr_s(r.tool_call_id)
    if r.tool_name:
        item["toolName"] = attr_s(r.tool_name)
    if r.heard is not None:
        item["heard"] = attr_s(r.heard)
    if r.first_phrase_ms is not None:
        item["firstPhraseMs"] = attr_n(r.first_phrase_ms)
    if r.shown is not None:
        item["shown"] = attr_s(r.shown)
    if r.lang:
        item["lang"] = attr_s(r.lang[:16])
    return item


def turn_record(item: Mapping[str, Any]) -> TurnRecord:
    calls: tuple[ToolCall, ...] = ()
    if "toolCalls" in item:
        calls = tuple(ToolCall(id=c[0], name=c[1], arguments=c[2]) for c in json.loads(get_s(item, "toolCalls")))
    role = get_s(item, "role")
    heard = item.get("heard", {}).get("S")
    return TurnRecord(
        key=TurnKey.parse(get_s(item, SORT_KEY)),
        role=role if role in ("user", "assistant", "tool", "interruption") else "assistant",  # type: ignore[arg-type]
        text=get_s(item, "text"),
        tool_calls=calls,
        tool_call_id=get_s(item, "toolCallId") or None,
        tool_name=get_s(item, "toolName") or None,
        heard=heard,
        at_ms=get_n(item, "atMs") or get_n(item, "at") * 1000 or None,
        first_phrase_ms=get_n(item, "firstPhraseMs", -1) if "firstPhraseMs" in item else None,
        shown=item.get("shown", {}).get("S"),
        lang=get_s(item, "lang") or None,
    )


@contextmanager
def store_errors(operation: str, passthrough: str | None = None) -> Iterator[None]:
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
