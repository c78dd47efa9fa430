"""``$default``: every ConversationRelay message (setup, prompt, dtmf, interrupt, error, info)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voice_agent import log, telemetry, wiring
from voice_agent.core.budget import Budget, SystemClock
from voice_agent.core.relay import Relay
from voice_agent.entry.events import MessageEvent, remaining_ms
from voice_agent.log import logger

_OK = {"statusCode": 200}


def handler(event: Mapping[str, Any], context: object, relay: Relay | None = None) -> dict[str, Any]:
    # Never raise and never return late: API Gateway would write an error frame into the call.
    log.start_invocation(context)
    try:
        message = MessageEvent.parse(event)
        log.bind(connection_id=message.connection_id)
        budget = Budget.start(SystemClock(), wiring.agent().turn_budget_s, remaining_ms(context))
        relay = relay or wiring.relay()
        handled = relay.handle(message.connection_id, message.body, budget, call_sid=message.call_sid)
        telemetry.record_frame(handled)
    except Exception:
        logger.exception("message handler failed")
    return _OK
