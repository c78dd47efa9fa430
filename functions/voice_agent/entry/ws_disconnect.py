"""``$disconnect``: mark the connection closed (best effort: API Gateway may not deliver it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voice_agent import log, wiring
from voice_agent.core.ports import ConnectionCloser
from voice_agent.entry.events import DisconnectEvent
from voice_agent.log import logger

_OK = {"statusCode": 200}


def handler(event: Mapping[str, Any], context: object, store: ConnectionCloser | None = None) -> dict[str, Any]:
    log.start_invocation(context)
    try:
        disconnect = DisconnectEvent.parse(event)
        log.bind(connection_id=disconnect.connection_id)
        closer = store or wiring.session_store()
        call_sid = closer.close_connection(disconnect.connection_id, gone=False, code=disconnect.status_code)
        log.bind(call_sid=call_sid)
        logger.info(
            "websocket closed",
            extra={"status_code": disconnect.status_code, "reason": disconnect.reason, "known": call_sid is not None},
        )
    except Exception:
        logger.exception("disconnect handler failed")
    return _OK
