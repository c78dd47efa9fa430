"""Stand-ins for the stack's two SQS queues and their Lambda event source mappings.

- The queues: moto's SQS server on loopback. The runtime's real boto3 client sends to it
  (``AWS_ENDPOINT_URL_SQS``), with ``DelaySeconds`` (how a timer waits without a Lambda waiting),
  and each queue has a dead-letter queue behind a redrive policy, as in the stack.
- The event source mappings: a poller per queue receives messages, invokes the real handler
  (``voice_agent.entry.silence_timer`` / ``record_builder``) with the event Lambda delivers (batch
  size 1, each message its own invocation, on a small pool: invocations run concurrently),
  deletes what succeeded, and lets a reported failure come back after ``retry_after_s`` until the
  redrive policy moves it to the dead-letter queue.

Differences from AWS, on purpose: a failed message comes back after 2 s instead of the queue's
visibility timeout (minutes), so retries show up while you watch; nothing else is scaled.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.apigw_events import LocalLambdaContext
from local.servers import LOOPBACK

log = logging.getLogger("local.timers")

Handler = Callable[[dict[str, Any], Any], Any]

TIMERS: Final = "timers"
RECORDS: Final = "records"
# Receives before the dead-letter queue, as the stack sets them (infra/constructs/*).
MAX_RECEIVES: Final[Mapping[str, int]] = {TIMERS: 3, RECORDS: 5}
FUNCTION_TIMEOUT_S: Final[Mapping[str, float]] = {TIMERS: 28.0, RECORDS: 60.0}
IN_FLIGHT_S: Final = 120  # a message being handled stays invisible this long
RETRY_AFTER_S: Final = 2
POLL_WAIT_S: Final = 1
LOCAL_ACCOUNT: Final = "123456789012"


@dataclass
class Delivery:
    """What happened to one message (tests read these)."""

    queue: str
    message_id: str
    body: str
    receive_count: int
    failed: bool


@dataclass
class QueueStandIn:
    name: str
    url: str
    dead_letter_url: str
    handler: Handler
    deliveries: list[Delivery] = field(default_factory=list)


def sqs_client(endpoint_url: str | None) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
        config=Config(retries={"mode": "standard", "total_max_attempts": 2}),
    )


def create_queue(client: Any, name: str, max_receives: int) -> tuple[str, str]:
    """A queue and its dead-letter queue (the redrive policy the stack sets)."""
    dead = client.create_queue(QueueName=f"{name}-dead-letter")["QueueUrl"]
    dead_arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_receives)})
    url = client.create_queue(
        QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(IN_FLIGHT_S)}
    )["QueueUrl"]
    return url, dead


def invoke(queue: QueueStandIn, message: Mapping[str, Any], function: str) -> bool:
    """One Lambda invocation for one message: True if it succeeded (the message is deleted)."""
    event = {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }
        ]
    }
    context = LocalLambdaContext(
        function_name=function, timeout_s=FUNCTION_TIMEOUT_S.get(queue.name, 30.0), request_id=str(uuid.uuid4())
    )
    try:
        result = queue.handler(event, context)
    except Exception:
        log.exception("%s handler raised", queue.name)
        return False
    failures = (result or {}).get("batchItemFailures") or []
    return not any(f.get("itemIdentifier") == message["MessageId"] for f in failures)


def deliver_visible(client: Any, queue: QueueStandIn, *, function: str = "local", retry_after_s: int = 0) -> int:
    """Receive what is visible now and invoke the handler for each, as the event source mapping
    does: delete successes, make failures visible again after ``retry_after_s``. Returns how many
    messages were delivered (tests drive queues with this; the poller calls it in a loop)."""
    messages = client.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    for message in messages:
        _settle(client, queue, message, invoke(queue, message, function), retry_after_s)
    return len(messages)


def _settle(client: Any, queue: QueueStandIn, message: Mapping[str, Any], ok: bool, retry_after_s: int) -> None:
    count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    queue.deliveries.append(Delivery(queue.name, message["MessageId"], message["Body"], count, failed=not ok))
    try:
        if ok:
            client.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        else:
            client.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=retry_after_s
            )
    except (ClientError, BotoCoreError):
        log.warning("could not settle a %s message", queue.name)


class LocalQueues:
    """Both queues on one moto server, each with its poller. ``handlers``: queue name -> handler."""

    def __init__(self, handlers: Mapping[str, Handler], *, retry_after_s: int = RETRY_AFTER_S) -> None:
        self._handlers = dict(handlers)
        self._retry_after_s = retry_after_s
        self._server: Any = None
        self._client: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sqs-lambda")
        self.endpoint_url = ""
        self.queues: dict[str, QueueStandIn] = {}

    def start(self) -> LocalQueues:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._client = sqs_client(self.endpoint_url)
        for name, handler in self._handlers.items():
            url, dead = create_queue(self._client, name, MAX_RECEIVES.get(name, 3))
            self.queues[name] = QueueStandIn(name=name, url=url, dead_letter_url=dead, handler=handler)
        for queue in self.queues.values():
            thread = threading.Thread(target=self._poll, args=(queue,), name=f"sqs-poller-{queue.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def url(self, name: str) -> str:
        return self.queues[name].url

    def dead_letters(self, name: str) -> list[str]:
        """Bodies waiting in a queue's dead-letter queue (left there)."""
        queue = self.queues[name]
        messages = self._client.receive_message(
            QueueUrl=queue.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [str(m["Body"]) for m in messages]

    def _poll(self, queue: QueueStandIn) -> None:
        while not self._stop.is_set():
            try:
                messages = self._client.receive_message(
                    QueueUrl=queue.url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=POLL_WAIT_S
                ).get("Messages", [])
            except (ClientError, BotoCoreError, OSError):
                if self._stop.wait(0.5):
                    return
                continue
            for message in messages:
                self._pool.submit(self._run, queue, message)

    def _run(self, queue: QueueStandIn, message: Mapping[str, Any]) -> None:
        ok = invoke(queue, message, f"voice-agent-{queue.name}")
        _settle(self._client, queue, message, ok, self._retry_after_s)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(POLL_WAIT_S + 2)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._server is not None:
            self._server.stop()
            self._server = None
