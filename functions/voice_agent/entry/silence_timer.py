"""The timer function: an SQS batch of timers (``core/silence.py``): silence reminders, key-entry
pauses, the hang-up after a timer's goodbye, and the call watch. A timer that fails (DynamoDB down)
is reported back and retried by the queue; firing one twice changes nothing (each checks the
generation it was set at)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from voice_agent import log, telemetry, wiring
from voice_agent import metric_names as metric
from voice_agent.adapters.queues import parse_timer
from voice_agent.core.budget import Budget, SystemClock
from voice_agent.core.silence import TimerHandler
from voice_agent.entry.events import remaining_ms
from voice_agent.log import logger

COUNTED: Final = {
    "reminded": metric.SILENCE_REMINDERS,
    "silence_goodbye": metric.SILENCE_HANGUPS,
    "time_limit": metric.TIME_LIMIT_HANGUPS,
    "cut_off": metric.CUT_OFF_CALLS,
}


def handler(event: Mapping[str, Any], context: object, timers: TimerHandler | None = None) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for message in event.get("Records") or ():
        message_id = str(message.get("messageId", ""))
        log.start_invocation(context)  # each message its own log keys
        try:
            timer = parse_timer(str(message.get("body", "")))
        except (ValueError, TypeError):
            logger.error("unreadable timer dropped")  # a timer is worth nothing late: no retry
            continue
        try:
            budget = Budget.start(SystemClock(), wiring.agent().turn_budget_s, remaining_ms(context))
            fired = (timers or wiring.timer_handler()).fire(timer, budget)
        except Exception:
            logger.exception("timer failed: the queue retries it", extra={"timer": timer.kind})
            failures.append({"itemIdentifier": message_id})
            continue
        logger.info("timer fired", extra={"timer": timer.kind, "result": fired})
        if fired in COUNTED:
            telemetry.record_count(COUNTED[fired])
    return {"batchItemFailures": failures}
