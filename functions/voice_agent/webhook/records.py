"""What the webhook does for the call record: when a callback ends the call, note what only it
knows (a transfer's reason, the dial result, a voicemail) and ask for the record. Never at the
caller's expense: a store or queue that fails is logged, and the TwiML goes out all the same (the
call watch still records a call whose request was lost, as cut off)."""

from __future__ import annotations

from collections.abc import Callable

from voice_agent.core import call_flow, call_record
from voice_agent.core.call_record import Asked, after_action
from voice_agent.core.model import RecordRequest
from voice_agent.core.ports import CallStore, RecordQueue
from voice_agent.errors import QueueError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.webhook.forms import DialResult, VoiceRequest


def on_action(
    queue: RecordQueue | None, store: CallStore, end: call_flow.SessionEnd, decision: call_flow.Decision
) -> None:
    asked = after_action(end, decision)
    if asked is None:
        return
    if asked.request.outcome == "transferred" and asked.request.reason:
        reason = asked.request.reason
        _quietly(lambda: store.note_transfer(end.call_sid, reason))
    _ask(queue, asked)


def on_voicemail(queue: RecordQueue | None, store: CallStore, call: VoiceRequest) -> None:
    _quietly(
        lambda: store.mark_voicemail(
            call.call_sid, direction=call.direction, from_number=call.from_number, to_number=call.to_number
        )
    )
    _ask(queue, Asked(RecordRequest(call.call_sid, outcome="voicemail"), call_record.SETTLE_S))


def on_dial_result(queue: RecordQueue | None, store: CallStore, result: DialResult) -> None:
    """The transfer is over (the person hung up, or no one answered): the call's record can say so."""
    _quietly(lambda: store.set_dial_result(result.call_sid, result.dial_status, result.duration_s))
    _ask(queue, Asked(RecordRequest(result.call_sid, outcome="transferred"), call_record.DIAL_SETTLE_S))


def _ask(queue: RecordQueue | None, asked: Asked) -> None:
    if queue is None:
        return
    try:
        queue.request(asked.request, asked.delay_s)
    except QueueError:
        logger.error("call record not requested (the call watch records the call as cut off)")


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except StoreUnavailableError:
        logger.error("session store write lost")
