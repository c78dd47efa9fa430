"""Call records end to end on moto: the webhook asks through the real records queue, the records
function (production wiring) builds each record into S3 and publishes its event on the bus, where
a rule routes it to a "CRM" queue, the way a fork would connect one. The queue is driven by the
local stand-in's event source mapping (``local.timers.deliver_visible``), redrive policy included.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from local.timers import MAX_RECEIVES, RECORDS, QueueStandIn, create_queue, deliver_visible
from tests.conftest import TEST_ENV
from tests.integration.test_turn_engine import CONN, LONG, budget, engine_for
from tests.support.aws import create_table
from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply, words
from tests.support.faults import CallFault
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.adapters import aws_clients
from voice_agent.core import call_record
from voice_agent.core.call_record import EVENT_DETAIL_TYPE, EVENT_SOURCE
from voice_agent.core.model import RecordRequest
from voice_agent.entry import record_builder
from voice_agent.protocol.inbound import Setup
from voice_agent.signatures import sign
from voice_agent.webhook.app import create_app

CALL = "CA" + "5" * 32
BUCKET = "voice-agent-call-records-test"
BUS = "voice-agent-calls-test"
FORM = {"CallSid": CALL, "AccountSid": "AC" + "0" * 32, "From": "+15555550123", "To": "+15555550199"}
HEARD = LONG[:60]
UNHEARD = LONG[200:]


@dataclass
class Cloud:
    s3: Any
    sqs: Any
    records: QueueStandIn
    crm_url: str
    webhook: TestClient

    def action(self, **form: str) -> None:
        self._post("/action", {**FORM, "CallStatus": "in-progress", "SessionId": "VX1", **form})

    def dial_status(self, status: str) -> None:
        self._post(
            "/dial-status", {**FORM, "CallStatus": "in-progress", "DialCallStatus": status, "DialCallDuration": "42"}
        )

    def _post(self, path: str, form: dict[str, str]) -> None:
        url = TEST_ENV["WEBHOOK_PUBLIC_URL"] + path
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(TEST_ENV["TWILIO_AUTH_TOKEN"], url, form),
        }
        assert self.webhook.post(path, content=urlencode(form), headers=headers).status_code == 200

    def deliver(self) -> int:
        return deliver_visible(self.sqs, self.records, function="records")

    def last_failed(self) -> bool:
        return self.records.deliveries[-1].failed

    def objects(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    def record(self) -> dict[str, Any]:
        (key,) = self.objects()
        data: dict[str, Any] = json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        return data

    def routed(self) -> list[dict[str, Any]]:
        """What the rule delivered to the CRM queue (removed from it)."""
        out = []
        for _ in range(10):
            messages = self.sqs.receive_message(QueueUrl=self.crm_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.crm_url, ReceiptHandle=m["ReceiptHandle"])
        return out


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    monkeypatch.setattr(call_record, "SETTLE_S", 0)  # moto holds a delayed message for real seconds
    monkeypatch.setattr(call_record, "DIAL_SETTLE_S", 0)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url, dead = create_queue(sqs, "records", MAX_RECEIVES[RECORDS])
        monkeypatch.setenv(names.RECORD_QUEUE_URL, url)
        monkeypatch.setenv(names.CALL_RECORDS_BUCKET, BUCKET)
        monkeypatch.setenv(names.CALL_EVENTS_BUS, BUS)
        wiring.reset()
        create_table(aws_clients.dynamodb())
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        events = boto3.client("events", region_name="us-east-1")
        events.create_event_bus(Name=BUS)
        # What a fork adds: a rule on the bus, here every record to a queue standing in for a CRM.
        crm = sqs.create_queue(QueueName="crm")["QueueUrl"]
        crm_arn = sqs.get_queue_attributes(QueueUrl=crm, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE]}
        events.put_rule(Name="to-crm", EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="to-crm", EventBusName=BUS, Targets=[{"Id": "crm", "Arn": crm_arn}])
        queue = QueueStandIn(
            name="records", url=url, dead_letter_url=dead, handler=lambda e, c: record_builder.handler(e, c)
        )
        yield Cloud(s3=s3, sqs=sqs, records=queue, crm_url=crm, webhook=TestClient(create_app()))


def call_with_a_barge_in() -> None:
    """A greeting, a long reply the caller talks over, and one more turn, by the real engine."""
    store, sender, model = wiring.session_store(), RecordingSender(), ScriptedModel()
    store.bind_connection(CONN, Setup(session_id="VX1", call_sid=CALL, direction="inbound", from_number="+15555550123"))
    model.replies.append(ScriptedReply(tokens=words(LONG), token_delay_s=0.01))
    model.say("Yes, on Sundays too.")

    def barge_in(connection_id: str, message: object) -> None:
        if len(sender.messages) == 2:
            thread = threading.Thread(target=store.record_interrupt, args=(CONN, HEARD, 1200))
            thread.start()
            thread.join()

    sender.on_send = barge_in
    engine = engine_for(store, sender, model)
    assert engine.run_prompt(CONN, "When are you open?", budget()).status == "interrupted"
    sender.on_send = None
    assert engine.run_prompt(CONN, "Also on Sundays?", budget()).status == "completed"


def test_a_hung_up_call_leaves_a_record_with_what_the_caller_heard_and_an_event(cloud: Cloud) -> None:
    call_with_a_barge_in()
    cloud.action(SessionStatus="completed", CallStatus="completed")
    assert cloud.deliver() == 1
    record = cloud.record()
    assert cloud.objects() == [f"calls/{record['startedAt'][:10]}/{CALL}.json"]
    assert record["callSid"] == CALL and record["outcome"] == "completed"
    said = [(line["speaker"], line["text"]) for line in record["transcript"]]
    assert said == [
        ("caller", "When are you open?"),
        ("agent", HEARD.strip()),
        ("caller", "Also on Sundays?"),
        ("agent", "Yes, on Sundays too."),
    ]
    assert UNHEARD not in json.dumps(record)
    assert record["turns"][0]["interrupted"] is True and record["turns"][0]["timeToFirstPhraseMs"] is not None
    (event,) = cloud.routed()
    assert (event["source"], event["detail-type"]) == (EVENT_SOURCE, EVENT_DETAIL_TYPE)
    assert event["detail"]["callSid"] == CALL and event["detail"]["outcome"] == "completed"
    assert event["detail"]["record"] == {"bucket": BUCKET, "key": cloud.objects()[0]}
    assert "transcript" not in event["detail"]


def test_a_transferred_call_is_recorded_after_the_dial_result(cloud: Cloud) -> None:
    call_with_a_barge_in()
    handoff = json.dumps({"reasonCode": "live-agent-handoff", "reason": "asked for a person"})
    cloud.action(SessionStatus="ended", HandoffData=handoff)
    assert cloud.deliver() == 0  # the transfer's own request waits: the dial result comes first
    cloud.dial_status("completed")
    assert cloud.deliver() == 1
    record = cloud.record()
    assert record["outcome"] == "transferred"
    assert record["transfer"] == {
        "target": wiring.agent().transfer_target,
        "reasonCode": "live-agent-handoff",
        "dialResult": "completed",
        "dialDurationS": 42,
    }
    assert [e["detail"]["outcome"] for e in cloud.routed()] == ["transferred"]


def test_one_record_per_call_when_the_callback_is_retried_and_the_trigger_fires_twice(cloud: Cloud) -> None:
    call_with_a_barge_in()
    for _ in range(2):  # Twilio retries /action (signatures carry no timestamp: a replay looks the same)
        cloud.action(SessionStatus="completed", CallStatus="completed")
    cloud.sqs.send_message(QueueUrl=cloud.records.url, MessageBody=json.dumps({"call_sid": CALL}))  # a third trigger
    assert cloud.deliver() == 3
    assert all(not d.failed for d in cloud.records.deliveries)
    assert len(cloud.objects()) == 1
    assert len(cloud.routed()) == 1


def test_a_builder_holding_the_lease_makes_the_others_stand_down(cloud: Cloud) -> None:
    call_with_a_barge_in()
    store = wiring.session_store()
    store.end_call(CALL, "completed")
    assert store.claim_record(CALL, "another-builder", 120)
    assert wiring.record_producer().produce(RecordRequest(CALL)) == "busy"
    assert cloud.objects() == []
    store.release_record(CALL, "another-builder")  # it failed and let go (or its lease ran out)
    assert wiring.record_producer().produce(RecordRequest(CALL)) == "recorded"
    assert wiring.record_producer().produce(RecordRequest(CALL)) == "duplicate"
    assert len(cloud.objects()) == 1 and len(cloud.routed()) == 1


def fail_until_dead_lettered(cloud: Cloud) -> list[str]:
    for _ in range(MAX_RECEIVES[RECORDS] + 1):
        cloud.deliver()
    dead = cloud.sqs.receive_message(QueueUrl=cloud.records.dead_letter_url, MaxNumberOfMessages=10)
    return [m["Body"] for m in dead.get("Messages", [])]


def redrive(cloud: Cloud, bodies: list[str]) -> None:
    """What `aws sqs start-message-move-task` does: the dead letters back onto the queue."""
    for body in bodies:
        cloud.sqs.send_message(QueueUrl=cloud.records.url, MessageBody=body)


def test_a_failing_bucket_is_retried_then_dead_lettered_then_redriven_once(cloud: Cloud) -> None:
    call_with_a_barge_in()
    cloud.action(SessionStatus="completed", CallStatus="completed")
    s3_down = CallFault("InternalError", 500, times=None).attach(aws_clients.s3(), "s3.PutObject")
    dead = fail_until_dead_lettered(cloud)
    attempts = [d.receive_count for d in cloud.records.deliveries]
    assert attempts == list(range(1, MAX_RECEIVES[RECORDS] + 1))  # retried, each attempt failed
    assert all(d.failed for d in cloud.records.deliveries)
    assert [json.loads(b)["call_sid"] for b in dead] == [CALL]  # not lost: waiting in the DLQ
    assert cloud.objects() == [] and cloud.routed() == []
    s3_down.times = 0
    redrive(cloud, dead)
    assert cloud.deliver() == 1
    assert len(cloud.objects()) == 1 and len(cloud.routed()) == 1


def test_a_failing_bus_is_retried_and_the_stored_record_is_announced_once(cloud: Cloud) -> None:
    call_with_a_barge_in()
    cloud.action(SessionStatus="completed", CallStatus="completed")
    # PutEvents answers 200 with the entry refused: the builder must read the entry, not the status.
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}]}
    bus_down = CallFault("", times=2, answer=refused).attach(aws_clients.events(), "events.PutEvents")
    assert cloud.deliver() == 1 and cloud.last_failed()
    stored = cloud.objects()
    assert len(stored) == 1  # the record is stored; only its event failed
    assert cloud.routed() == []
    assert cloud.deliver() == 1 and cloud.last_failed()
    assert cloud.deliver() == 1 and not cloud.last_failed()
    assert bus_down.injected == 2
    assert cloud.objects() == stored  # the first attempt's copy, not a second one
    assert len(cloud.routed()) == 1


def test_an_answering_machine_leaves_a_voicemail_record(cloud: Cloud) -> None:
    form = {**FORM, "CallStatus": "in-progress", "Direction": "outbound-api", "AnsweredBy": "machine_end_beep"}
    cloud._post("/voice", form)
    assert cloud.deliver() == 1
    record = cloud.record()
    assert (record["outcome"], record["direction"], record["to"]) == ("voicemail", "outbound-api", "+15555550199")
    assert record["transcript"] == []


def test_a_request_for_an_unknown_call_is_dropped_not_retried(cloud: Cloud) -> None:
    cloud.sqs.send_message(QueueUrl=cloud.records.url, MessageBody=json.dumps({"call_sid": "CA" + "9" * 32}))
    cloud.sqs.send_message(QueueUrl=cloud.records.url, MessageBody="not json")
    assert cloud.deliver() == 2
    by_body = {d.body: d.failed for d in cloud.records.deliveries}
    assert by_body == {json.dumps({"call_sid": "CA" + "9" * 32}): False, "not json": True}  # garbage: to the DLQ
