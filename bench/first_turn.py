"""The first turn of a fresh process: ``python -m bench.first_turn --greeting-s 3 --out r.json``.

A cold Lambda's first turn pays for imports (``openai`` above all, on the OpenAI path; boto3's
``bedrock-runtime`` client on Bedrock's) and new connections. Here the
whole local stack starts in a new interpreter, a call is placed, and the caller speaks after
``--greeting-s`` seconds: 0 is a caller who talks over the greeting (the prompt races ``setup``'s
warm-up), about 3 s is a caller who listens to the welcome greeting first, which gives ``setup``
time to import the SDK and open the model connection. The second turn is the warm reference.

Run by ``python -m bench`` in a child process, so that nothing it imported itself (the
baseline's ``openai``, above all) is already loaded. Caveat: the local stack's own modules
(boto3, starlette) are loaded before the handlers run, unlike in a Lambda. DynamoDB Local, a
fresh JVM here, is warmed up first with a client of its own: its just-in-time compiler made the
first turn's requests 20 ms slower, which real DynamoDB does not do to a new Lambda.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from pathlib import Path

from bench.client import RelayClient
from bench.live import BENCH_RECORDS
from bench.llm import BenchBrain, prompt, reply_text
from bench.stats import ms
from local.dynamodb import client as dynamodb_client
from local.stack import LocalStack, StackOptions
from voice_agent.model_choice import PROVIDERS, Provider


async def first_turns(
    greeting_s: float, ttft_s: float, token_interval_s: float, tokens: int, provider: Provider
) -> dict[str, object]:
    token = secrets.token_hex(16)
    brain = BenchBrain()
    options = StackOptions(
        http_port=0,
        ws_port=0,
        llm="demo",
        provider=provider,
        think_aloud=False,
        brain=brain,
        twilio_auth_token=token,
        table_name="bench-first-turn",
        model_ttft_s=ttft_s,
        model_token_interval_s=token_interval_s,
        records_dir=BENCH_RECORDS,
    )
    with LocalStack(options) as stack:
        warm_engine(stack.urls.dynamodb, options.table_name)
        client = RelayClient.for_call(stack.urls.relay, token)
        await client.open()
        await asyncio.sleep(greeting_s)
        first = await client.turn(prompt("cold", 1, tokens))
        await asyncio.sleep(0.2)
        second = await client.turn(prompt("cold", 2, tokens))
        await client.close()
    ok = first.text == reply_text("cold", 1, tokens) and second.text == reply_text("cold", 2, tokens)
    return {
        "provider": provider,
        "greeting_s": greeting_s,
        "first_text_ms": ms(first.first_text_s),
        "second_text_ms": ms(second.first_text_s),
        "replies_ok": ok and not brain.problems,
    }


def warm_engine(endpoint: str, table: str, rounds: int = 200) -> None:
    """Exercise DynamoDB Local's request paths (conditional update, query, put) on a dummy item."""
    db = dynamodb_client(endpoint)
    key = {"pk": {"S": "CONN#bench-warm-up"}, "sk": {"S": "CONN"}}
    db.put_item(TableName=table, Item={**key, "gen": {"N": "0"}, "status": {"S": "open"}})
    for _ in range(rounds):
        db.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD gen :one",
            ConditionExpression="attribute_exists(pk) AND #status = :open",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":open": {"S": "open"}},
            ReturnValues="ALL_NEW",
        )
        db.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
            ExpressionAttributeValues={":pk": {"S": "CALL#bench-warm-up"}, ":turn": {"S": "TURN#"}},
            ScanIndexForward=False,
            Limit=40,
            ConsistentRead=True,
        )
        db.put_item(TableName=table, Item={"pk": {"S": "CALL#bench-warm-up"}, "sk": {"S": "TURN#0001"}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.first_turn")
    parser.add_argument("--greeting-s", type=float, default=3.0)
    parser.add_argument("--ttft-s", type=float, default=0.2)
    parser.add_argument("--token-interval-s", type=float, default=0.02)
    parser.add_argument("--tokens", type=int, default=12)
    parser.add_argument("--provider", choices=PROVIDERS, default="bedrock")
    parser.add_argument("--out", type=Path, required=True)
    a = parser.parse_args(argv)
    result = asyncio.run(first_turns(a.greeting_s, a.ttft_s, a.token_interval_s, a.tokens, a.provider))
    a.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
