"""The per-call token: an HMAC of the ``CallSid``, in the relay URL of every ``<Connect>`` of the call
and in its ``callToken`` ``<Parameter>``. It makes each call's socket URL (and so its upgrade
signature) different, and lets ``$connect`` bind a socket to exactly the call the webhook answered,
before any ``setup``, with no lookup: a socket naming another call is refused there.

The key is derived from the Twilio auth token (kept in Secrets Manager; both functions that need it,
the webhook and ``$connect``, already read it): ``HMAC-SHA256(auth token, "voice-agent/call-token/v1")``.
A separate label keeps the token from ever being a Twilio signature. Rotating the auth token changes
the key: a call in progress then fails its next upgrade (its app reconnect) and ``/action`` resumes
it under the new key.

The relay URL's query is written with its names sorted: API Gateway hands ``$connect`` the query as
a map, so a signature over "the URL as written" can only be rebuilt if the order is known
(``signatures.valid_upgrade`` accepts that form, the bare URL with the query as parameters, and the
bare URL alone, whichever Twilio signs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

CALL_PARAMETER: Final = "callSid"
TOKEN_PARAMETER: Final = "callToken"  # noqa: S105 (a parameter name, not a secret)
SESSION_PARAMETER: Final = "session"  # which <Connect> of the call (0, then reconnectAttempt)
_LABEL: Final = b"voice-agent/call-token/v1"
_TOKEN_CHARS: Final = 32
_CALL_SID: Final = re.compile(r"^CA[0-9A-Za-z_-]{6,64}$")


def derive_key(auth_token: str) -> bytes:
    return hmac.new(auth_token.encode(), _LABEL, hashlib.sha256).digest()


def token_for(key: bytes, call_sid: str) -> str:
    digest = hmac.new(key, call_sid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:_TOKEN_CHARS]


def matches(key: bytes, call_sid: str, token: str) -> bool:
    return hmac.compare_digest(token_for(key, call_sid), token)


def relay_url(base: str, call_sid: str, token: str, session: int) -> str:
    """The socket URL for one ``<Connect>`` of a call (query names sorted; see the module docs)."""
    query = {CALL_PARAMETER: call_sid, TOKEN_PARAMETER: token, SESSION_PARAMETER: str(session)}
    return f"{base}?{urlencode(sorted(query.items()))}"


@dataclass(frozen=True, slots=True)
class SocketClaim:
    """What an upgrade's query says about its call (not yet checked)."""

    call_sid: str
    token: str
    session: int


def claim_from(query: Mapping[str, str]) -> SocketClaim | None:
    """The call an upgrade names, if its query names one well-formed (``None``: it names none)."""
    call_sid, token = query.get(CALL_PARAMETER), query.get(TOKEN_PARAMETER)
    if not call_sid or not token or not _CALL_SID.match(call_sid):
        return None
    raw = query.get(SESSION_PARAMETER, "0")
    session = int(raw) if raw.isdigit() and len(raw) <= 3 else 0
    return SocketClaim(call_sid=call_sid, token=token[:64], session=session)
