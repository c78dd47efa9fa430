"""The two SQS queues the runtime writes to: timers (``core/silence.py``) and call-record requests
(``core/call_record.py``). Each message is a small JSON object; a delay is SQS ``DelaySeconds``
(whole seconds, 0..900), which is how a timer waits without a Lambda waiting."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.adapters.aws_clients import SqsClient
from voice_agent.core.model import RecordRequest, Timer
from voice_agent.core.silence import whole_seconds
from voice_agent.errors import QueueError
from voice_agent.log import logger

MESSAGE_VERSION: Final = 1


class SqsQueue:
    def __init__(self, client: SqsClient, queue_url: str, *, name: str) -> None:
        self._client = client
        self._url = queue_url
        self._name = name

    def put(self, body: Mapping[str, Any], delay_s: float) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._url,
                MessageBody=json.dumps({"v": MESSAGE_VERSION, **body}, separators=(",", ":")),
                DelaySeconds=whole_seconds(delay_s),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            logger.warning("queue send failed", extra={"queue": self._name, "error_code": code})
            raise QueueError(f"{self._name}: {code}") from exc
        except BotoCoreError as exc:
            logger.warning("queue unreachable", extra={"queue": self._name, "error": type(exc).__name__})
            raise QueueError(f"{self._name}: {type(exc).__name__}") from exc


class SqsTimers:
    """``Timers`` on the timer queue."""

    def __init__(self, queue: SqsQueue) -> None:
        self._queue = queue

    def schedule(self, timer: Timer, delay_s: float) -> None:
        self._queue.put(timer_body(timer), delay_s)


class SqsRecordQueue:
    """``RecordQueue`` on the records queue."""

    def __init__(self, queue: SqsQueue) -> None:
        self._queue = queue

    def request(self, request: RecordRequest, delay_s: float = 0) -> None:
        self._queue.put({k: v for k, v in asdict(request).items() if v is not None}, delay_s)


def timer_body(timer: Timer) -> dict[str, Any]:
    return {k: v for k, v in asdict(timer).items() if v not in (None, "", 0) or k in ("kind", "gen")}


def parse_timer(body: str) -> Timer:
    """A timer message (``ValueError`` if it is not one)."""
    data = _object(body)
    kind = data.get("kind")
    if kind not in ("silence", "keys", "hangup", "watch") or not isinstance(data.get("call_sid"), str):
        raise ValueError("not a timer")
    ints = {k: _int(data.get(k, 0)) for k in ("gen", "step", "entry", "deadline")}
    language, agent = data.get("language"), data.get("agent")
    return Timer(
        kind=kind,
        call_sid=data["call_sid"],
        connection_id=str(data.get("connection_id", "")),
        language=language if isinstance(language, str) else None,
        agent=agent if isinstance(agent, str) and agent else None,
        **ints,
    )


def parse_record_request(body: str) -> RecordRequest:
    data = _object(body)
    call_sid = data.get("call_sid")
    if not isinstance(call_sid, str) or not call_sid:
        raise ValueError("not a record request")
    outcome, reason = data.get("outcome"), data.get("reason")
    return RecordRequest(
        call_sid=call_sid,
        outcome=outcome if isinstance(outcome, str) else None,
        reason=reason if isinstance(reason, str) else None,
    )


def _object(body: str) -> dict[str, Any]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a whole number")
    return value
