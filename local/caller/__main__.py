"""The simulated Twilio caller's command line.

    python -m local.caller                       # interactive call to a running `make dev`
    python -m local.caller --scenario demo       # scripted (local/scenarios/demo.toml)
    python -m local.caller --scenario my.toml --webhook http://127.0.0.1:8080
    python -m local.caller --direct ws://127.0.0.1:8765/local   # no webhook: straight to the socket
    python -m local.caller --list

The webhook defaults to ``http://127.0.0.1:$LOCAL_HTTP_PORT`` (8080) and the relay socket (for
``--direct``) to ``ws://127.0.0.1:$LOCAL_WS_PORT/local``. Requests are signed with
``TWILIO_AUTH_TOKEN`` when it is set, as Twilio signs them with the account's auth token.
Exit status: 0 when every scenario met its expectations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from local.caller import scenario as scenarios
from local.caller.interactive import InteractiveDriver, LineReader
from local.caller.phone import DIRECT_RELAY_ATTRIBUTES, Call, CallerIdentity, CallResult
from local.caller.transcript import StreamingTranscript, latency_table
from local.caller.twiml import ConversationRelay
from local.stack import (
    DEFAULT_HTTP_PORT,
    DEFAULT_STAGE,
    DEFAULT_WS_PORT,
    HTTP_PORT_VARIABLE,
    VOICE_PATH,
    WS_PORT_VARIABLE,
    port_from_env,
)
from voice_agent import env_names as names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.caller", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", default=[], help="scenario name or .toml path (repeatable)")
    parser.add_argument(
        "--interactive", action="store_true", help="type as the caller (the default without --scenario)"
    )
    parser.add_argument("--webhook", help="the webhook's base URL (default http://127.0.0.1:$LOCAL_HTTP_PORT)")
    parser.add_argument("--voice-path", default=VOICE_PATH, help="the voice webhook's path (default /voice)")
    parser.add_argument("--direct", nargs="?", const="", default=None, metavar="WS_URL", help="skip the webhook")
    parser.add_argument("--auth-token", default=None, help=f"sign with this token (default ${names.TWILIO_AUTH_TOKEN})")
    parser.add_argument("--from", dest="from_number", default="+15555550123")
    parser.add_argument("--to", dest="to_number", default="+15555550199")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def _voice_url(args: argparse.Namespace) -> str:
    base = args.webhook or f"http://127.0.0.1:{port_from_env(HTTP_PORT_VARIABLE, DEFAULT_HTTP_PORT)}"
    return str(base).rstrip("/") + str(args.voice_path)


def _relay_url(args: argparse.Namespace) -> str:
    if args.direct:
        return str(args.direct)
    return f"ws://127.0.0.1:{port_from_env(WS_PORT_VARIABLE, DEFAULT_WS_PORT)}/{DEFAULT_STAGE}"


async def _interactive(args: argparse.Namespace, token: str | None) -> int:
    transcript = StreamingTranscript()
    identity = CallerIdentity(from_number=args.from_number, to_number=args.to_number)
    call = Call(transcript=transcript, auth_token=token, identity=identity)
    driver = InteractiveDriver(LineReader(asyncio.get_running_loop()))
    result: CallResult
    if args.direct is not None:
        relay = ConversationRelay(url=_relay_url(args), attributes=DIRECT_RELAY_ATTRIBUTES)
        result = await call.direct(relay, driver)
    else:
        result = await call.dial(_voice_url(args), driver)
    transcript.note(f"call over: {result.outcome} ({result.detail})")
    for line in latency_table(result):
        print("  " + line)
    return 0 if result.outcome not in ("error", "webhook_failed", "connect_failed") else 1


async def _scripted(args: argparse.Namespace, token: str | None) -> int:
    failed = 0
    for name in args.scenario:
        scenario = scenarios.load(scenarios.find(name))
        print(f"\n== {scenario.name}: {scenario.description}".rstrip(": "))
        if args.direct is not None:
            result = await scenarios.run(scenario, relay_url=_relay_url(args), auth_token=token)
        else:
            result = await scenarios.run(scenario, voice_url=_voice_url(args), auth_token=token)
        for line in scenarios.summary(result):
            print(line)
        failed += not result.passed
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for path in sorted(scenarios.SCENARIO_DIR.glob("*.toml")):
            print(f"{path.stem:20} {scenarios.load(path).description}")
        return 0
    token = args.auth_token if args.auth_token is not None else os.environ.get(names.TWILIO_AUTH_TOKEN) or None
    try:
        if args.scenario and not args.interactive:
            return asyncio.run(_scripted(args, token))
        return asyncio.run(_interactive(args, token))
    except scenarios.ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
