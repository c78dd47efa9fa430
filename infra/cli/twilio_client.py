"""A Twilio REST client from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in the environment.

The credentials are read here and handed to the client; nothing in the CLI prints, logs or
echoes them (or the request URLs, which carry the account SID).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from infra import outputs
from infra.cli.stack_outputs import CliError, add_stack_arguments, load_outputs, require

ACCOUNT_SID = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def client_from_env(env: Mapping[str, str] | None = None, http_client: Any = None) -> Any:
    """``twilio.rest.Client`` for the account in ``env`` (``http_client`` lets tests stay offline)."""
    from twilio.rest import Client

    env = os.environ if env is None else env
    sid, token = env.get(ACCOUNT_SID, "").strip(), env.get(AUTH_TOKEN, "").strip()
    missing = [name for name, value in ((ACCOUNT_SID, sid), (AUTH_TOKEN, token)) if not value]
    if missing:
        raise CliError(f"set {' and '.join(missing)} in the environment (Twilio Console > Account > API keys)")
    if not sid.startswith("AC"):
        raise CliError(f"{ACCOUNT_SID} should start with AC (the account SID, not an API key SID)")
    return Client(sid, token, http_client=http_client)


def e164(number: str) -> str:
    """A phone number in E.164 form (+ and digits), or a CliError that says so."""
    cleaned = re.sub(r"[\s().-]", "", number)
    if not _E164.match(cleaned):
        raise CliError(f"{number!r} is not an E.164 phone number such as +15551234567")
    return cleaned


def describe_twilio_error(exc: Exception) -> str:
    """What Twilio said, without the request URL (it carries the account SID).

    ``TwilioRestException`` carries status/code/msg; a failed list page raises a plain
    ``TwilioException("Unable to fetch page", response)`` whose response body holds the same.
    """
    status, code, message = getattr(exc, "status", None), getattr(exc, "code", None), getattr(exc, "msg", None)
    response = next((a for a in exc.args if hasattr(a, "status_code")), None)
    if response is not None:
        status = response.status_code
        try:
            body = json.loads(response.text)
        except (TypeError, ValueError):
            body = {}
        if isinstance(body, dict):
            code, message = body.get("code", code), body.get("message", message)
    text = f"Twilio refused the request: HTTP {status or '?'}"
    if code:
        text += f", error {code}"
    return f"{text}: {message or type(exc).__name__}"


def add_webhook_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the stack's /voice webhook URL comes from: cdk-outputs.json, or given outright."""
    add_stack_arguments(parser)
    parser.add_argument("--voice-url", help="use this webhook URL instead of the stack's WebhookVoiceUrl")


def webhook_voice_url(args: argparse.Namespace) -> str:
    return str(args.voice_url or require(load_outputs(args.stack_outputs, args.stack), outputs.WEBHOOK_VOICE_URL))


def exit_code(command: Callable[[], int]) -> int:
    """Run a command's body: 2 for a usage or set-up problem, 1 for a refusal from Twilio, each
    said in one line on stderr (never the credentials or a request URL)."""
    from twilio.base.exceptions import TwilioException

    try:
        return command()
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TwilioException as exc:
        print(f"error: {describe_twilio_error(exc)}", file=sys.stderr)
        return 1
