"""The records function: an SQS batch of record requests (``core/call_record.py``). A request that
fails is reported back (partial batch response): the queue retries it, and after its last attempt
moves it to the dead-letter queue; the others in the batch are done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voice_agent import log, telemetry, wiring
from voice_agent import metric_names as metric
from voice_agent.adapters.queues import parse_record_request
from voice_agent.core.call_record import RecordProducer
from voice_agent.log import logger


def handler(event: Mapping[str, Any], context: object, producer: RecordProducer | None = None) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for message in event.get("Records") or ():
        message_id = str(message.get("messageId", ""))
        attempt = (message.get("attributes") or {}).get("ApproximateReceiveCount")
        log.start_invocation(context)  # each message its own log keys
        try:
            request = parse_record_request(str(message.get("body", "")))
        except (ValueError, TypeError):
            logger.error("unreadable record request: left for the dead-letter queue", extra={"attempt": attempt})
            failures.append({"itemIdentifier": message_id})
            continue
        log.bind(call_sid=request.call_sid)
        try:
            made = (producer or wiring.record_producer()).produce(request)
        except Exception:
            logger.exception("call record failed: the queue retries it", extra={"attempt": attempt})
            telemetry.record_count(metric.CALL_RECORD_FAILURES)
            failures.append({"itemIdentifier": message_id})
            continue
        if made == "recorded":
            telemetry.record_count(metric.CALL_RECORDS)
    return {"batchItemFailures": failures}
