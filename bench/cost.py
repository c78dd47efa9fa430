"""What 1,000 call-minutes cost on AWS, from counted requests: ``make cost`` (or ``python -m bench.cost``).

The counts per turn and per call (frames per reply, DynamoDB requests, log bytes) are what
``make bench`` measured; with a ``.bench/results.json`` present they are read from it, otherwise the
defaults below are the figures the benchmark measured on this version. The traffic shape (turns a
minute, call length, how long a Lambda is busy per turn) is an assumption, stated in
``Assumptions``; the prices live in ``prices.py``. ``--markdown`` prints the tables that
``docs/deploy.md`` shows.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from bench.prices import PRICES, Prices

RESULTS = Path(__file__).resolve().parents[1] / ".bench" / "results.json"
MB_PER_GB = 1024


@dataclass(frozen=True, slots=True)
class Usage:
    """Counted by ``make bench`` on a typical turn (the defaults: its figures on this version)."""

    frames_per_reply: float = 7.0  # PostToConnection calls for a reply of Assumptions.reply_tokens
    dynamodb_writes_per_turn: float = 3.0  # the generation, the caller's message, the agent's message
    dynamodb_reads_per_turn: float = 1.0  # the history query (0.33 with Preemption.keep_history, as make bench counted)
    dynamodb_claims_per_frame: float = 1.0  # the interrupt check before each posted frame (a conditional write)
    # /voice 1 (the call's token); $connect 2 (it notes the socket's call); setup 3 (call, connection,
    # greeting); the session's end 1 (its claim); $disconnect 1; /action 1
    dynamodb_writes_per_call: float = 9.0
    log_bytes_per_turn: float = 986.0  # the message function's JSON log and metric lines for one turn
    log_bytes_per_other_frame: float = 563.0  # setup, interrupt, ...


@dataclass(frozen=True, slots=True)
class Speculation:
    """What partial prompts and speculative turns add per caller turn (issue 15; ``make bench``'s
    figure 1p counts them; these defaults are its counts on this version, where the final prompt
    always repeated the last partial). Set ``partials_per_turn`` to 0 for an agent with
    ``partial_prompts`` off."""

    partials_per_turn: float = 11.4  # Twilio's partials for one utterance (the bench: a word each, 11.4 words)
    opens_per_turn: float = 10.4  # partials with enough words: one conditional write each (refused ones too)
    reads_per_turn: float = 28.0  # consistent GetItem of the connection: stability checks, polls while waiting
    closes_per_turn: float = 1.0  # the slot's removal
    requests_per_turn: float = 1.0  # speculative model requests (a confirmed one is the turn's own)
    confirmed_per_turn: float = 1.0  # turns answered from a speculation (no request of their own)
    unspoken_share: float = 0.073  # output tokens generated and never spoken, of all generated
    seconds_per_turn: float = 2.5  # invocation time partials add: stability windows and waits


@dataclass(frozen=True, slots=True)
class Assumptions:
    """The traffic shape. Function memory is the stack's (``infra/stack.py``; a test keeps them equal)."""

    turns_per_minute: float = 4.0  # caller turns, one final ``prompt`` frame each
    other_frames_per_minute: float = 1.0  # setup, interrupt, dtmf
    call_minutes: float = 3.0  # average call length: calls per 1,000 minutes = 1,000 / this
    reply_tokens: int = 50  # about 200 output tokens a minute
    message_memory_mb: int = 1024
    connect_memory_mb: int = 512
    disconnect_memory_mb: int = 256
    webhook_memory_mb: int = 512
    message_seconds_per_turn: float = 3.0  # time to first token plus the streamed reply
    message_seconds_per_other_frame: float = 0.1
    connect_seconds: float = 0.3
    # The connect function also runs as $connect's authorizer (the same checks, no write).
    authorizer_seconds: float = 0.05
    disconnect_seconds: float = 0.05
    webhook_seconds_per_request: float = 0.15
    webhook_requests_per_call: float = 2.0  # /voice and /action
    # Low traffic: every call meets a cold message, connect and webhook function (init is billed).
    cold_starts_per_call: float = 1.0
    message_init_seconds: float = 1.5
    other_init_seconds: float = 1.0
    read_units_per_history_query: float = 2.0  # strongly consistent, ~5 KB of history on average (4 KB units)
    # One per cold start of connect and webhook (the Twilio token); on the OpenAI path the message
    # function reads the API key too (3). Bedrock needs no key: the default reads 2.
    secrets_reads_per_call: float = 2.0
    platform_log_bytes_per_invocation: float = 350.0  # Lambda's START, END and REPORT lines
    other_function_log_bytes_per_invocation: float = 600.0  # connect, disconnect, webhook log lines
    llm_input_tokens_per_turn: float = 2000.0  # system prompt + history, resent every turn
    llm_output_tokens_per_turn: float = 50.0


@dataclass(frozen=True, slots=True)
class AfterCall:
    """Per call, after and around it: the record and the timers. Request counts are what the
    integration tests count (``tests/integration/test_call_records.py``, ``test_silence.py``); the
    record's size is a 3-minute call of 12 turns built by ``core/call_record.py``."""

    record_sqs_requests: float = 3.0  # the webhook's send, the event source mapping's receive and delete
    record_read_units: float = 3.0  # the call item (GetItem, 1) and every turn (Query, ~6 KB consistent: 2)
    record_write_units: float = 2.0  # the lease and recordedAt (UpdateItem each)
    record_bytes: float = 6_000.0  # S3 object; its event is ~0.5 KB (one 64 KB chunk)
    record_seconds: float = 0.3  # warm: one GetItem, one Query, two UpdateItem, one PUT, one PutEvents
    timers_per_call: float = 14.0  # one after each reply (12), the greeting's, the call watch's one look
    timer_sqs_requests: float = 3.0  # send, receive, delete
    timer_write_units: float = 1.0  # one conditional write (a failed condition is billed too)
    watch_read_units: float = 2.0  # the watch reads the call and its socket
    timer_seconds: float = 0.05
    queued_memory_mb: int = 512  # the timers and records functions (infra/stack.py)
    cold_starts_per_call: float = 2.0  # low traffic: each of the two functions starts cold once a call
    init_seconds: float = 1.0
    log_bytes_per_invocation: float = 1_200.0  # JSON lines, the metric line, START/END/REPORT
    retention_days: float = 7.0  # the bucket's lifecycle (transcript_retention_days)
    # Optional (CallRecordPolicy): a summary and fields, two requests to the model after the call.
    summary_input_tokens: float = 3_800.0  # the transcript twice (~1,800 tokens) and the instructions
    summary_output_tokens: float = 300.0


@dataclass(frozen=True, slots=True)
class Line:
    item: str
    count: str
    usd: float


def usage_from_results(results: dict[str, Any], reply_tokens: int) -> Usage:
    """The counts ``make bench`` wrote (frames only if counted at ``reply_tokens``)."""
    usage = Usage()
    measured = dict(results.get("counts_for_cost") or {})
    if measured.get("reply_tokens") != reply_tokens:
        measured.pop("frames_per_reply", None)
    for name in (f.name for f in fields(Usage)):
        if isinstance(measured.get(name), int | float) and not isinstance(measured.get(name), bool):
            usage = replace(usage, **{name: float(measured[name])})
    return usage


def aws_lines(u: Usage, a: Assumptions, p: Prices = PRICES) -> list[Line]:
    minutes = 1000.0
    calls = minutes / a.call_minutes
    turns = minutes * a.turns_per_minute
    others = minutes * a.other_frames_per_minute
    frames_out = turns * u.frames_per_reply
    gb = {k: v / MB_PER_GB for k, v in (("msg", a.message_memory_mb), ("con", a.connect_memory_mb))}
    gb["dis"], gb["web"] = a.disconnect_memory_mb / MB_PER_GB, a.webhook_memory_mb / MB_PER_GB
    message_gbs = (turns * a.message_seconds_per_turn + others * a.message_seconds_per_other_frame) * gb["msg"]
    other_gbs = calls * (
        (a.connect_seconds + a.authorizer_seconds) * gb["con"]
        + a.disconnect_seconds * gb["dis"]
        + a.webhook_requests_per_call * a.webhook_seconds_per_request * gb["web"]
    )
    init_gbs = (
        calls
        * a.cold_starts_per_call
        * (a.message_init_seconds * gb["msg"] + a.other_init_seconds * (gb["con"] + gb["web"]))
    )
    # per call: the authorizer, $connect, $disconnect and the webhook's requests
    lambda_requests = turns + others + calls * (3 + a.webhook_requests_per_call)
    wru = turns * (u.dynamodb_writes_per_turn + u.dynamodb_claims_per_frame * u.frames_per_reply)
    wru += calls * u.dynamodb_writes_per_call
    rru = turns * u.dynamodb_reads_per_turn * a.read_units_per_history_query
    log_bytes = (
        turns * u.log_bytes_per_turn
        + others * u.log_bytes_per_other_frame
        + lambda_requests * a.platform_log_bytes_per_invocation
        + calls * (3 + a.webhook_requests_per_call) * a.other_function_log_bytes_per_invocation
    )
    secrets = calls * a.secrets_reads_per_call
    return [
        Line(
            "WebSocket messages",
            f"{turns + others:,.0f} in + {frames_out:,.0f} out ({u.frames_per_reply:g} frames a reply)",
            (turns + others + frames_out) * p.websocket_message_per_million / 1e6,
        ),
        Line(
            "WebSocket connection minutes", f"{minutes:,.0f}", minutes * p.websocket_connection_minute_per_million / 1e6
        ),
        Line(
            "HTTP API requests (webhook)",
            f"{calls * a.webhook_requests_per_call:,.0f}",
            calls * a.webhook_requests_per_call * p.http_api_request_per_million / 1e6,
        ),
        Line("Lambda requests", f"{lambda_requests:,.0f}", lambda_requests * p.lambda_request_per_million / 1e6),
        Line(
            "Lambda duration, message function",
            f"{message_gbs:,.0f} GB-s ({a.message_seconds_per_turn:g} s a turn at {a.message_memory_mb} MB)",
            message_gbs * p.lambda_arm64_per_gb_second,
        ),
        Line("Lambda duration, other functions", f"{other_gbs:,.0f} GB-s", other_gbs * p.lambda_arm64_per_gb_second),
        Line("Lambda cold starts (init)", f"{init_gbs:,.0f} GB-s", init_gbs * p.lambda_arm64_per_gb_second),
        Line(
            "DynamoDB writes",
            f"{wru:,.0f} WRU ({u.dynamodb_writes_per_turn:g} + {u.dynamodb_claims_per_frame:g} a frame, per turn)",
            wru * p.dynamodb_write_unit_per_million / 1e6,
        ),
        Line("DynamoDB reads", f"{rru:,.0f} RRU", rru * p.dynamodb_read_unit_per_million / 1e6),
        Line("CloudWatch Logs ingestion", f"{log_bytes / 1e6:,.1f} MB", log_bytes / 1e9 * p.logs_ingestion_per_gb),
        Line("Secrets Manager reads", f"{secrets:,.0f}", secrets * p.secrets_manager_per_10k_calls / 1e4),
    ]


def speculation_lines(sp: Speculation, a: Assumptions, p: Prices = PRICES) -> list[Line]:
    """Per 1,000 call-minutes: what partial prompts and speculation add on AWS and in the model."""
    turns = 1000.0 * a.turns_per_minute
    partials = turns * sp.partials_per_turn
    gbs = turns * sp.seconds_per_turn * a.message_memory_mb / MB_PER_GB
    wru = turns * (sp.opens_per_turn + sp.closes_per_turn)
    rru = turns * sp.reads_per_turn  # items under 4 KB: one unit per consistent read
    wasted = max(0.0, sp.requests_per_turn - sp.confirmed_per_turn)  # requests whose reply nobody heard
    tin = turns * wasted * a.llm_input_tokens_per_turn
    tout = turns * a.llm_output_tokens_per_turn * sp.unspoken_share / max(1e-9, 1 - sp.unspoken_share)
    return [
        Line(
            "Partial prompts: WebSocket messages in, Lambda requests",
            f"{partials:,.0f} ({sp.partials_per_turn:g} a turn)",
            partials * (p.websocket_message_per_million + p.lambda_request_per_million) / 1e6,
        ),
        Line(
            "Partial prompts: Lambda duration",
            f"{gbs:,.0f} GB-s ({sp.seconds_per_turn:g} s a turn: stability windows, waits)",
            gbs * p.lambda_arm64_per_gb_second,
        ),
        Line(
            "Speculation: DynamoDB writes and reads",
            f"{wru:,.0f} WRU + {rru:,.0f} RRU",
            wru * p.dynamodb_write_unit_per_million / 1e6 + rru * p.dynamodb_read_unit_per_million / 1e6,
        ),
        Line(
            "Speculation: model tokens nobody heard (Nova Lite)",
            f"{tin:,.0f} input ({wasted:.2f} unheard requests a turn) + {tout:,.0f} output",
            (tin * p.bedrock_nova_lite_input_per_million + tout * p.bedrock_nova_lite_output_per_million) / 1e6,
        ),
    ]


def speculation_from_results(results: dict[str, Any]) -> Speculation:
    """Figure 1p's counts per project turn, where ``make bench`` measured them."""
    part = results.get("latency_partials") or {}
    sp = part.get("same_speculation")
    turns = part.get("project_turns")
    if not sp or not turns:
        return Speculation()
    ended = sp.get("ended", {})
    default = Speculation()
    return replace(
        default,
        partials_per_turn=part.get("partials_per_turn", default.partials_per_turn),
        opens_per_turn=part.get("opens_per_turn", default.opens_per_turn),
        reads_per_turn=sp["polls"] / turns,
        requests_per_turn=sp["requests"] / turns,
        confirmed_per_turn=ended.get("confirmed", 0) / turns,
        unspoken_share=part.get("unspoken_share", default.unspoken_share),
        seconds_per_turn=sp["wait_s"] / turns,
    )


# (item, input and output price per million tokens) for each model priced next to the telephony.
def _models(p: Prices) -> list[tuple[str, float, float]]:
    return [
        (
            "LLM, Bedrock Amazon Nova Lite (the default)",
            p.bedrock_nova_lite_input_per_million,
            p.bedrock_nova_lite_output_per_million,
        ),
        (
            "LLM, Bedrock Claude Haiku 4.5",
            p.bedrock_claude_haiku_input_per_million,
            p.bedrock_claude_haiku_output_per_million,
        ),
        (
            "LLM, OpenAI gpt-4.1-mini (LLM_PROVIDER=openai)",
            p.openai_mini_input_per_million,
            p.openai_mini_output_per_million,
        ),
        ("LLM, a large model (gpt-4o class)", p.llm_large_input_per_million, p.llm_large_output_per_million),
    ]


def outside_lines(a: Assumptions, p: Prices = PRICES) -> list[Line]:
    minutes = 1000.0
    tin, tout = a.llm_input_tokens_per_turn * a.turns_per_minute, a.llm_output_tokens_per_turn * a.turns_per_minute
    tokens = f"{tin:,.0f} input + {tout:,.0f} output tokens a minute"
    lines = [
        Line(
            "Twilio ConversationRelay",
            f"${p.twilio_conversation_relay_per_minute:g} a minute (community-cited; confirm on twilio.com)",
            minutes * p.twilio_conversation_relay_per_minute,
        ),
        Line(
            "Twilio inbound voice, US local number",
            f"${p.twilio_inbound_voice_per_minute:g} a minute (toll-free and outbound cost more)",
            minutes * p.twilio_inbound_voice_per_minute,
        ),
    ]
    for item, price_in, price_out in _models(p):
        lines.append(
            Line(
                item,
                f"{tokens} at ${price_in:.2f} / ${price_out:.2f} per million",
                minutes * (tin * price_in + tout * price_out) / 1e6,
            )
        )
    return lines


def after_call_lines(c: AfterCall, p: Prices = PRICES) -> list[Line]:
    """Per 1,000 calls: each call's record (S3 and its event) and its timers (silence, the watch)."""
    calls = 1000.0
    timers = calls * c.timers_per_call
    sqs = calls * c.record_sqs_requests + timers * c.timer_sqs_requests
    invocations = calls + timers
    gb = c.queued_memory_mb / MB_PER_GB
    gbs = (calls * c.record_seconds + timers * c.timer_seconds + calls * c.cold_starts_per_call * c.init_seconds) * gb
    wru = calls * c.record_write_units + timers * c.timer_write_units
    rru = calls * (c.record_read_units + c.watch_read_units)
    stored_gb_months = calls * c.record_bytes / 1e9 * c.retention_days / 30
    logs = (invocations * c.log_bytes_per_invocation) / 1e9
    return [
        Line("SQS requests (records, timers)", f"{sqs:,.0f}", sqs * p.sqs_request_per_million / 1e6),
        Line(
            "Lambda, records and timers functions",
            f"{invocations:,.0f} invocations, {gbs:,.0f} GB-s (cold starts included)",
            invocations * p.lambda_request_per_million / 1e6 + gbs * p.lambda_arm64_per_gb_second,
        ),
        Line(
            "DynamoDB",
            f"{wru:,.0f} WRU, {rru:,.0f} RRU",
            wru * p.dynamodb_write_unit_per_million / 1e6 + rru * p.dynamodb_read_unit_per_million / 1e6,
        ),
        Line("S3 PUT", f"{calls:,.0f}", calls * p.s3_put_per_thousand / 1e3),
        Line(
            "S3 storage",
            f"{calls * c.record_bytes / 1e6:,.1f} MB for {c.retention_days:g} days",
            stored_gb_months * p.s3_storage_per_gb_month,
        ),
        Line("EventBridge events", f"{calls:,.0f}", calls * p.eventbridge_event_per_million / 1e6),
        Line("CloudWatch Logs ingestion", f"{logs * 1e3:,.1f} MB", logs * p.logs_ingestion_per_gb),
    ]


def summary_line(c: AfterCall, p: Prices = PRICES) -> Line:
    """The optional summary and fields, on the default model (per 1,000 calls)."""
    calls = 1000.0
    usd = calls * (
        c.summary_input_tokens * p.bedrock_nova_lite_input_per_million
        + c.summary_output_tokens * p.bedrock_nova_lite_output_per_million
    )
    return Line(
        "Summary and fields (optional), Nova Lite",
        f"{c.summary_input_tokens:,.0f} input + {c.summary_output_tokens:,.0f} output tokens a call",
        usd / 1e6,
    )


def idle_lines(p: Prices = PRICES) -> list[Line]:
    """What the stack costs a month with no calls (the secrets; alarms and metrics: docs/deploy.md)."""
    # Lambda long-polls each SQS source with about five pollers (20 s waits): empty receives,
    # billed as SQS requests. Not measured here (see docs/deploy.md); the first million requests
    # of the month are free.
    polls = 2 * 5 * 3 * 60 * 24 * 30
    return [
        Line(
            "Secrets Manager, Bedrock model (default)",
            "1 secret: the Twilio auth token",
            p.secrets_manager_per_secret_month,
        ),
        Line(
            "Secrets Manager, with an OpenAI model",
            "2 secrets: the Twilio auth token and the OpenAI API key",
            2 * p.secrets_manager_per_secret_month,
        ),
        Line(
            "SQS, Lambda polling the two queues",
            f"about {polls / 1e6:.1f} million empty receives (before SQS's free million)",
            polls * p.sqs_request_per_million / 1e6,
        ),
    ]


def model(u: Usage, a: Assumptions, p: Prices = PRICES, sp: Speculation | None = None) -> dict[str, Any]:
    aws = aws_lines(u, a, p)
    spec = speculation_lines(sp or Speculation(), a, p)
    outside = outside_lines(a, p)
    after = after_call_lines(AfterCall(), p)
    return {
        "after_call_lines": [asdict(line) for line in after],
        "after_call_per_1000_calls_usd": round(sum(line.usd for line in after), 4),
        "summary_line": asdict(summary_line(AfterCall(), p)),
        "usage": asdict(u),
        "assumptions": asdict(a),
        "aws_lines": [asdict(line) for line in aws],
        "aws_per_1000_minutes_usd": round(sum(line.usd for line in aws), 4),
        "speculation_lines": [asdict(line) for line in spec],
        "speculation_per_1000_minutes_usd": round(sum(line.usd for line in spec), 4),
        "outside_lines": [asdict(line) for line in outside],
        "idle_lines": [asdict(line) for line in idle_lines(p)],
    }


def _usd(value: float) -> str:
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.3f}"
    return f"${value:.4f}"


def render(result: dict[str, Any], *, markdown: bool) -> str:
    aws = [Line(**line) for line in result["aws_lines"]]
    outside = [Line(**line) for line in result["outside_lines"]]
    idle = [Line(**line) for line in result.get("idle_lines", [])]
    after = [Line(**line) for line in result.get("after_call_lines", [])]
    after_total = result.get("after_call_per_1000_calls_usd", 0.0)
    summary = Line(**result["summary_line"]) if "summary_line" in result else None
    total = result["aws_per_1000_minutes_usd"]
    spec = [Line(**line) for line in result.get("speculation_lines", [])]
    spec_total = result.get("speculation_per_1000_minutes_usd", 0.0)
    if markdown:
        rows = ["| Item | Count per 1,000 call-minutes | Cost |", "|---|---|---|"]
        rows += [f"| {line.item} | {line.count} | {_usd(line.usd)} |" for line in aws]
        rows += [f"| **AWS total** | | **{_usd(total)}** (about ${total / 1000:.5f} a call-minute) |", ""]
        rows += ["| Partial prompts and speculation, per 1,000 call-minutes | Count | Cost |", "|---|---|---|"]
        rows += [f"| {line.item} | {line.count} | {_usd(line.usd)} |" for line in spec]
        rows += [f"| **Speculation total** (AWS and model) | | **{_usd(spec_total)}** |", ""]
        rows += ["| Per 1,000 call-minutes | Cost | Basis |", "|---|---|---|"]
        rows += [f"| AWS (above) | {_usd(total)} | the counts and assumptions above |"]
        rows += [f"| {line.item} | {_usd(line.usd)} | {line.count} |" for line in outside]
        rows += ["", "| Per 1,000 calls, after the call | Count | Cost |", "|---|---|---|"]
        rows += [f"| {line.item} | {line.count} | {_usd(line.usd)} |" for line in after]
        rows += [f"| **Record and timers total** | | **{_usd(after_total)}** |"]
        if summary is not None:
            rows += [f"| {summary.item} | {summary.count} | {_usd(summary.usd)} |"]
        rows += ["", "| While idle, a month | Cost | Basis |", "|---|---|---|"]
        rows += [f"| {line.item} | {_usd(line.usd)} | {line.count} |" for line in idle]
        return "\n".join(rows)
    width = max(len(line.item) for line in aws + outside + idle + after) + 2
    out = ["AWS, per 1,000 call-minutes (us-east-1 list prices, bench/prices.py):"]
    out += [f"  {line.item:<{width}}{_usd(line.usd):>10}   {line.count}" for line in aws]
    out += [f"  {'AWS total':<{width}}{_usd(total):>10}   (${total / 1000:.5f} a call-minute)", ""]
    out += ["Partial prompts and speculation add (per 1,000 call-minutes; agent.preemption, partial_prompts):"]
    out += [f"  {line.item:<{width}}{_usd(line.usd):>10}   {line.count}" for line in spec]
    out += [f"  {'Speculation total':<{width}}{_usd(spec_total):>10}", ""]
    out += ["Next to what else a call-minute costs (per 1,000 call-minutes):"]
    out += [f"  {line.item:<{width}}{_usd(line.usd):>10}   {line.count}" for line in outside]
    out += ["", "Per 1,000 calls, after the call (each call's record and event, its timers):"]
    out += [f"  {line.item:<{width}}{_usd(line.usd):>10}   {line.count}" for line in after]
    out += [f"  {'Record and timers total':<{width}}{_usd(after_total):>10}"]
    if summary is not None:
        out += [f"  {summary.item:<{width}}{_usd(summary.usd):>10}   {summary.count}"]
    out += ["", "While no one calls, a month:"]
    out += [f"  {line.item:<{width}}{_usd(line.usd):>10}   {line.count}" for line in idle]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make cost", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--results", type=Path, default=RESULTS, help="counts from this bench run (if it exists)")
    parser.add_argument("--markdown", action="store_true", help="the tables for docs/deploy.md")
    args = parser.parse_args(argv)
    assumptions = Assumptions()
    usage = Usage()
    source = "the defaults in bench/cost.py (what make bench counted on this version)"
    speculation = Speculation()
    if args.results.is_file():
        results = json.loads(args.results.read_text(encoding="utf-8"))
        usage = usage_from_results(results, assumptions.reply_tokens)
        speculation = speculation_from_results(results)
        source = f"{args.results} (make bench)"
    result = model(usage, assumptions, sp=speculation)
    if not args.markdown:
        print(f"Counts from {source}.")
    print(render(result, markdown=args.markdown))


if __name__ == "__main__":
    main()
