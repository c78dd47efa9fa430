"""The cold paths stay light: ``$connect``, ``$disconnect``, the frames that start no model turn
(interrupt, error, info, unknown), the timers that say a line or end a session, and the records
function never import the OpenAI SDK or FastAPI. Each runs in a fresh
interpreter (the test process has imported everything already), against moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from moto import mock_aws
import boto3
from tests.support.aws import create_table
from tests.support.events import FakeLambdaContext, connect_event, disconnect_event, message_event, relay_frame
from voice_agent.entry import record_builder, silence_timer, ws_connect, ws_disconnect, ws_message

ctx = FakeLambdaContext()
with mock_aws():
    create_table(boto3.client("dynamodb", region_name="us-east-1"))
    import os
    sqs = boto3.client("sqs", region_name="us-east-1")
    os.environ["TIMER_QUEUE_URL"] = sqs.create_queue(QueueName="timers")["QueueUrl"]
    os.environ["CALL_RECORDS_BUCKET"], os.environ["CALL_EVENTS_BUS"] = "records-bucket-cold", "calls"
    ws_connect.handler(connect_event("c1", headers={"X-Twilio-Signature": "unsigned"}), ctx)
    for frame in (
        relay_frame("interrupt", utteranceUntilInterrupt="Hi"),
        relay_frame("error", description="Invalid message received, code: 64107"),
        relay_frame("info", name="clientSpeaking", value="on"),
        json.dumps({"type": "somethingNew"}),
        "not json",
    ):
        ws_message.handler(message_event("c1", frame), ctx)
    ws_disconnect.handler(disconnect_event("c1"), ctx)
    for kind in ("silence", "keys", "hangup", "watch"):
        timer = json.dumps({"kind": kind, "call_sid": "CA1", "connection_id": "c1", "gen": 0})
        silence_timer.handler({"Records": [{"messageId": "m", "body": timer}]}, ctx)
    record_builder.handler({"Records": [{"messageId": "m", "body": json.dumps({"call_sid": "CA1"})}]}, ctx)
print(json.dumps(sorted(m for m in ("openai", "fastapi", "starlette", "httpx") if m in sys.modules)))
"""


def test_connect_disconnect_and_non_prompt_frames_import_neither_openai_nor_fastapi() -> None:
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}"}
    env.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "openai" not in loaded and "fastapi" not in loaded, loaded
