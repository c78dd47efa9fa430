"""``make dev``: the whole system on this machine, in the foreground, until Ctrl-C.

    python -m local.dev [--http-port N] [--ws-port N] [--dynamodb auto|dynamodb-local|moto]
                              [--llm auto|demo] [--ready-file PATH]

Ports default to ``LOCAL_HTTP_PORT`` (webhook, 8080) and ``LOCAL_WS_PORT`` (WebSocket and
management API, 8765); 0 picks free ones. The model: ``LLM_PROVIDER`` (``bedrock``, the agent's
default, or ``openai``) and ``LLM_MODEL``; Bedrock at ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` with the
environment's credentials and region if it is set, OpenAI at ``OPENAI_BASE_URL`` or with
``OPENAI_API_KEY``, else the offline demo model behind a stand-in of that provider's protocol.
SIGINT or SIGTERM stops everything (the DynamoDB Local child included) and exits 0.
``--ready-file`` receives the URLs as JSON once the stack is up (``make demo`` waits for it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local.dynamodb import EngineUnavailableError
from local.stack import (
    DEFAULT_HTTP_PORT,
    DEFAULT_WS_PORT,
    HTTP_PORT_VARIABLE,
    WS_PORT_VARIABLE,
    LocalStack,
    StackOptions,
    port_from_env,
)
from voice_agent import env_names as names

log = logging.getLogger("local.dev")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make dev", description="Run the voice agent's local stack.")
    parser.add_argument("--http-port", type=int, default=None, help=f"webhook port ({HTTP_PORT_VARIABLE}, 8080)")
    parser.add_argument("--ws-port", type=int, default=None, help=f"WebSocket port ({WS_PORT_VARIABLE}, 8765)")
    parser.add_argument("--stage", default="local", help="the WebSocket API stage (the URL path)")
    parser.add_argument("--dynamodb", choices=("auto", "dynamodb-local", "moto"), default="auto")
    parser.add_argument("--llm", choices=("auto", "demo"), default="auto", help="demo: the offline model, always")
    parser.add_argument("--ready-file", type=Path, default=None, help="write the URLs here as JSON when ready")
    parser.add_argument(
        "--log-level", default="INFO", help="the stand-in's log level (the runtime's: POWERTOOLS_LOG_LEVEL)"
    )
    return parser.parse_args(argv)


def banner(stack: LocalStack) -> str:
    urls = stack.urls
    assert stack.engine is not None
    lines = ["", "Voice agent: local stack is up.", ""]
    if urls.webhook is not None:
        lines.append(f"  voice webhook      POST {urls.voice}   (Twilio's 'A call comes in' URL)")
        lines.append(f"  action callback    POST {urls.webhook}/action")
    else:
        lines.append("  voice webhook      (not in this checkout: voice_agent.webhook; the caller connects directly)")
    lines += [
        f"  relay WebSocket    {urls.relay}   (<ConversationRelay url>)",
        f"  management API     {urls.callback}/@connections/{{connectionId}}",
        f"  sessions table     {stack.options.table_name} on {stack.engine.description} at {urls.dynamodb}",
        f"  language model     {stack.llm_description}",
        f"  call records       {urls.records_dir}/<CallSid>.json  (make calls lists them)",
        "  timers             "
        + ("silence, key entry, time limit (SQS stand-in)" if names.TIMER_QUEUE_URL in stack.env else "off"),
    ]
    if stack.signatures_checked:
        lines.append(f"  Twilio signatures  checked with {names.TWILIO_AUTH_TOKEN}")
    else:
        lines.append(f"  Twilio signatures  NOT CHECKED: set {names.TWILIO_AUTH_TOKEN} to check them")
    if stack.engine.kind == "moto":
        lines.append("  (Java or the DynamoDB Local jar is missing: moto server stands in for DynamoDB)")
    direct = "" if urls.webhook is not None else " DIRECT=1"
    lines += [
        "",
        "Call it from another terminal (same environment variables):",
        f"  make caller{direct}                 talk as the caller (type; /help for keys, barge-in, drop)",
        f"  make caller{direct} SCENARIO=demo   a scripted call",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def write_ready_file(path: Path, stack: LocalStack) -> None:
    assert stack.engine is not None
    urls = stack.urls
    data = {
        "pid": os.getpid(),
        "webhook_url": urls.webhook,
        "voice_url": urls.voice,
        "relay_url": urls.relay,
        "callback_url": urls.callback,
        "dynamodb_url": urls.dynamodb,
        "dynamodb_engine": stack.engine.kind,
        "dynamodb_pid": stack.engine.pid,
        "dynamodb": stack.engine.description,
        "llm": stack.llm_description,
        "signatures_checked": stack.signatures_checked,
        "records_dir": str(urls.records_dir) if urls.records_dir is not None else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "httpcore", "botocore", "urllib3", "werkzeug"):  # a line per request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        http_port = (
            args.http_port if args.http_port is not None else port_from_env(HTTP_PORT_VARIABLE, DEFAULT_HTTP_PORT)
        )
        ws_port = args.ws_port if args.ws_port is not None else port_from_env(WS_PORT_VARIABLE, DEFAULT_WS_PORT)
    except ValueError as exc:
        log.error("%s", exc)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    options = StackOptions(http_port=http_port, ws_port=ws_port, stage=args.stage, dynamodb=args.dynamodb, llm=args.llm)
    stack = LocalStack(options)
    try:
        stack.start()
    except OSError as exc:
        log.error(
            "cannot listen (%s): is another `make dev` running? Set %s / %s to free ports.",
            exc,
            HTTP_PORT_VARIABLE,
            WS_PORT_VARIABLE,
        )
        return 2
    except EngineUnavailableError as exc:
        log.error("%s", exc)
        return 2
    try:
        print(banner(stack), flush=True)
        if args.ready_file is not None:
            write_ready_file(args.ready_file, stack)
        while not stop.wait(0.5):
            pass
        print("Stopping the local stack...", flush=True)
    finally:
        stack.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
