"""Place an outbound call through the deployed agent: Twilio dials, then asks the stack's /voice
webhook what to do, exactly as for an incoming call.

    TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... \
        python -m infra.cli.outbound_call --to +15557654321 --from +15551234567 [--machine-detection Enable]

--from must be a Twilio number (or a verified caller ID) of the account. With --machine-detection,
Twilio runs answering-machine detection before fetching the webhook and posts its verdict
(AnsweredBy) along with the usual parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from infra.cli.stack_outputs import CliError
from infra.cli.twilio_client import add_webhook_arguments, client_from_env, e164, exit_code, webhook_voice_url

MACHINE_DETECTION = ("Enable", "DetectMessageEnd")


def place_call(
    client: Any,
    *,
    to: str,
    from_: str,
    voice_url: str,
    machine_detection: str | None = None,
    machine_detection_timeout_s: int | None = None,
) -> str:
    """Start the call; returns its SID."""
    options: dict[str, Any] = {"to": to, "from_": from_, "url": voice_url, "method": "POST"}
    if machine_detection is not None:
        if machine_detection not in MACHINE_DETECTION:
            raise CliError(f"machine detection must be one of {', '.join(MACHINE_DETECTION)}")
        options["machine_detection"] = machine_detection
        if machine_detection_timeout_s is not None:
            options["machine_detection_timeout"] = machine_detection_timeout_s
    call = client.calls.create(**options)
    return str(call.sid)


def main(argv: Sequence[str] | None = None, *, http_client: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", required=True, help="the number to call, E.164")
    parser.add_argument("--from", dest="from_", required=True, help="your Twilio number, E.164")
    parser.add_argument(
        "--machine-detection",
        choices=MACHINE_DETECTION,
        help="answering-machine detection: Enable (decide fast) or DetectMessageEnd (wait for the beep)",
    )
    parser.add_argument("--machine-detection-timeout", type=int, metavar="SECONDS", help="Twilio's default is 30")
    parser.add_argument(
        "--agent", help="the agent that makes the call (a folder of the agents folder); default: by number"
    )
    add_webhook_arguments(parser)
    args = parser.parse_args(argv)

    def call() -> int:
        to, from_ = e164(args.to), e164(args.from_)
        voice_url = webhook_voice_url(args)
        if args.agent:  # an outbound call picks its agent explicitly (docs/agents.md)
            voice_url += ("&" if "?" in voice_url else "?") + urlencode({"agent": args.agent})
        sid = place_call(
            client_from_env(http_client=http_client),
            to=to,
            from_=from_,
            voice_url=voice_url,
            machine_detection=args.machine_detection,
            machine_detection_timeout_s=args.machine_detection_timeout,
        )
        amd = f" with answering-machine detection ({args.machine_detection})" if args.machine_detection else ""
        print(f"calling {to} from {from_}{amd}: call {sid}; the agent answers via {voice_url}")
        return 0

    return exit_code(call)


if __name__ == "__main__":
    raise SystemExit(main())
