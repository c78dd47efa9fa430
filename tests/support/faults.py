"""Inject AWS faults below botocore's retry logic (moto cannot produce them): the client sees a
real HTTP error response, so its retry mode, error parsing and timeouts all run for real."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._body


def dynamodb_error(code: str, status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    return AWSResponse("https://dynamodb", status, headers, _Raw(body))


def rest_json_error(code: str, status: int) -> AWSResponse:
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/json"
    headers["x-amzn-ErrorType"] = code
    return AWSResponse("https://execute-api", status, headers, _Raw(json.dumps({"message": "injected"}).encode()))


@dataclass
class FaultInjector:
    """Answers the first ``times`` matching requests with ``response`` (forever if times is None)."""

    response: Callable[[], AWSResponse]
    times: int | None = 1
    attempts: int = 0
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.attempts += 1
            if self.times is None or self.injected < self.times:
                self.injected += 1
                return self.response()
        return None

    def attach(self, client: Any, event: str) -> FaultInjector:
        client.meta.events.register_first(f"before-send.{event}", self)
        return self


@dataclass
class CallFault:
    """Fails the first ``times`` calls of an operation before any request is made (``before-call``,
    where botocore's Stubber answers too): for services whose moto mock acts on a request even
    when a ``before-send`` handler answered it (S3, EventBridge)."""

    code: str
    status: int = 500
    times: int | None = 1
    injected: int = 0
    answer: dict[str, Any] | None = None  # a 200 answer instead (EventBridge's partial failure)

    def __call__(self, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if self.times is not None and self.injected >= self.times:
            return None
        self.injected += 1
        if self.answer is not None:
            answer = {**self.answer, "ResponseMetadata": {"HTTPStatusCode": 200}}
            return AWSResponse("https://injected", 200, HTTPHeaders(), _Raw(b"")), answer
        parsed = {
            "Error": {"Code": self.code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return AWSResponse("https://injected", self.status, HTTPHeaders(), _Raw(b"")), parsed

    def attach(self, client: Any, event: str) -> CallFault:
        client.meta.events.register_first(f"before-call.{event}", self)
        return self
