"""One cold start, in this fresh interpreter: ``python bench/probe.py <scenario> <result.json>``.

Run by ``coldstart.py`` as a script (not ``-m``), so nothing but the standard library is imported
before the clock starts. The parent sets the environment a Lambda would have (table, endpoints, the
Twilio token's secret ARN, served by a stand-in Secrets Manager) and binds the connection ids used
here. Each scenario measures the module import, then the first invocation (which is when the
entry points import boto3 and build their clients, lazily), and records which heavy modules the
process holds afterwards.

- ``boto3``: ``import boto3``; first call: a DynamoDB client and one request (the floor any
  Python function that talks to DynamoDB pays).
- ``ws_connect``: the ``$connect`` entry; first call: a signed upgrade, the Twilio token read from
  Secrets Manager as in AWS.
- ``ws_disconnect``: the ``$disconnect`` entry; first call: the close (one DynamoDB update).
- ``ws_message``: the ``$default`` entry; first call: an ``interrupt``. Then, untimed: ``info``,
  ``error``, an unknown type, a malformed frame and the human key (a handoff, no model), the
  module check, and a ``setup``, which imports the model SDK on purpose (its warm-up).
- ``webhook``: the webhook entry (FastAPI + Mangum); no call.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

HEAVY = ("openai", "fastapi", "boto3", "pydantic", "starlette", "mangum", "httpx2", "httpx")


def _loaded() -> dict[str, bool]:
    return {name: name in sys.modules for name in HEAVY}


def _message_event(connection_id: str, body: str) -> dict[str, Any]:
    return {"requestContext": {"connectionId": connection_id, "routeKey": "$default"}, "body": body}


def _disconnect_event(connection_id: str) -> dict[str, Any]:
    return {"requestContext": {"connectionId": connection_id, "disconnectStatusCode": 1000}}


def main(scenario: str, out_path: str) -> None:
    env = os.environ
    result: dict[str, Any] = {"scenario": scenario}
    started = time.perf_counter()
    if scenario == "boto3":
        import boto3

        result["import_ms"] = (time.perf_counter() - started) * 1000
        t = time.perf_counter()
        client = boto3.client("dynamodb", endpoint_url=env["DYNAMODB_ENDPOINT_URL"])
        client.describe_table(TableName=env["SESSIONS_TABLE_NAME"])
        result["call_ms"] = (time.perf_counter() - t) * 1000
    elif scenario == "ws_connect":
        from voice_agent.entry import ws_connect

        result["import_ms"] = (time.perf_counter() - started) * 1000
        t = time.perf_counter()
        event = {
            "requestContext": {"connectionId": "probe-connect", "routeKey": "$connect"},
            "headers": {"X-Twilio-Signature": env["BENCH_UPGRADE_SIGNATURE"], "Host": "bench"},
        }
        response = ws_connect.handler(event, None)
        result["call_ms"] = (time.perf_counter() - t) * 1000
        result["status"] = response.get("statusCode")
    elif scenario == "ws_disconnect":
        from voice_agent.entry import ws_disconnect

        result["import_ms"] = (time.perf_counter() - started) * 1000
        t = time.perf_counter()
        ws_disconnect.handler(_disconnect_event(env["BENCH_CONNECTION_ID"]), None)
        result["call_ms"] = (time.perf_counter() - t) * 1000
    elif scenario == "ws_message":
        from voice_agent.entry import ws_message

        result["import_ms"] = (time.perf_counter() - started) * 1000
        conn = env["BENCH_CONNECTION_ID"]
        t = time.perf_counter()
        interrupt = {"type": "interrupt", "utteranceUntilInterrupt": "Sure, I", "durationUntilInterruptMs": 400}
        ws_message.handler(_message_event(conn, json.dumps(interrupt)), None)
        result["call_ms"] = (time.perf_counter() - t) * 1000
        for body in (
            json.dumps({"type": "info", "name": "roundTripDelayMs", "value": "120"}),
            json.dumps({"type": "error", "description": "Invalid message received (64107)"}),
            json.dumps({"type": "somethingNew", "x": 1}),
            "not json",
            json.dumps({"type": "dtmf", "digit": "0"}),  # the human key: a handoff, no model
        ):
            ws_message.handler(_message_event(conn, body), None)
        result["after_non_prompt_frames"] = _loaded()
        setup = {
            "type": "setup",
            "sessionId": "VXprobe",
            "callSid": env["BENCH_CALL_SID"],
            "accountSid": "AC" + "0" * 32,
            "from": "+15555550123",
            "to": "+15555550199",
            "direction": "inbound",
            "callStatus": "RINGING",
            "customParameters": {},
        }
        t = time.perf_counter()
        ws_message.handler(_message_event(conn + "-setup", json.dumps(setup)), None)
        result["setup_ms"] = (time.perf_counter() - t) * 1000
        result["after_setup"] = _loaded()
    elif scenario == "webhook":
        from voice_agent.entry import webhook  # noqa: F401

        result["import_ms"] = (time.perf_counter() - started) * 1000
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    result.setdefault("after_non_prompt_frames", _loaded())
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
