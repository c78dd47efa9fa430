"""Point a Twilio phone number's voice webhook at the deployed stack.

    TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... \
        python -m infra.cli.twilio_number --number +15551234567 [--stack-outputs cdk-outputs.json]

Sets "A call comes in" to Webhook, HTTP POST, the stack's WebhookVoiceUrl (or --voice-url).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.cli.stack_outputs import CliError
from infra.cli.twilio_client import add_webhook_arguments, client_from_env, e164, exit_code, webhook_voice_url


@dataclass(frozen=True, slots=True)
class Wired:
    sid: str
    number: str
    voice_url: str
    previous_voice_url: str | None
    cleared_application: bool


def point_number(client: Any, *, number: str, voice_url: str) -> Wired:
    """Find ``number`` in the account and send its incoming calls to ``voice_url`` (POST)."""
    matches = client.incoming_phone_numbers.list(phone_number=number, limit=2)
    if not matches:
        raise CliError(f"{number} is not a phone number of this Twilio account")
    found = matches[0]
    if getattr(found, "trunk_sid", None):
        raise CliError(f"{number} belongs to an Elastic SIP trunk, which ignores the voice webhook; detach it first")
    changes: dict[str, str] = {"voice_url": voice_url, "voice_method": "POST"}
    # A number tied to a TwiML App ignores its own voice URL: untie it.
    cleared = bool(getattr(found, "voice_application_sid", None))
    if cleared:
        changes["voice_application_sid"] = ""
    updated = found.update(**changes)
    return Wired(
        sid=str(updated.sid),
        number=str(updated.phone_number),
        voice_url=str(updated.voice_url),
        previous_voice_url=getattr(found, "voice_url", None) or None,
        cleared_application=cleared,
    )


def main(argv: Sequence[str] | None = None, *, http_client: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", required=True, help="the Twilio number, E.164 (+15551234567)")
    add_webhook_arguments(parser)
    args = parser.parse_args(argv)

    def wire() -> int:
        number = e164(args.number)
        wired = point_number(client_from_env(http_client=http_client), number=number, voice_url=webhook_voice_url(args))
        print(f"{wired.number} ({wired.sid}): incoming calls now POST to {wired.voice_url}")
        if wired.previous_voice_url and wired.previous_voice_url != wired.voice_url:
            print(f"  (it was {wired.previous_voice_url})")
        if wired.cleared_application:
            print("  (it was tied to a TwiML App; that link was removed so the webhook applies)")
        return 0

    return exit_code(wire)


if __name__ == "__main__":
    raise SystemExit(main())
