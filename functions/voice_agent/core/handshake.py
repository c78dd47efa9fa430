"""The ``$connect`` decision: accept the WebSocket upgrade only from Twilio.

Returning a non-2xx status from the ``$connect`` integration fails the upgrade with that status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voice_agent.signatures import SIGNATURE_HEADER, header, valid_upgrade


@dataclass(frozen=True, slots=True)
class UpgradeDecision:
    status_code: int
    reason: str
    # Echoed back if the client offered subprotocols (none is documented for Twilio; a strict
    # client would abort a handshake that ignores its offer).
    subprotocol: str | None = None
    # The URL the signature had to be over (logged on a refusal: the first thing to compare with
    # what Twilio dialed when every call fails with 64102).
    checked_url: str | None = None

    @property
    def allowed(self) -> bool:
        return 200 <= self.status_code < 300


def decide_upgrade(
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    public_url: str | None,
    auth_token: str | None,
    validation: bool,
) -> UpgradeDecision:
    offered = header(headers, "sec-websocket-protocol")
    subprotocol = offered.split(",")[0].strip() or None if offered else None
    if not validation:
        return UpgradeDecision(200, "signature validation disabled (local only)", subprotocol)
    if not public_url or not auth_token:
        return UpgradeDecision(500, "relay public URL or auth token not configured")
    signature = header(headers, SIGNATURE_HEADER)
    if not signature:
        return UpgradeDecision(403, "missing signature", checked_url=public_url)
    if not valid_upgrade(auth_token, public_url, query, signature):
        return UpgradeDecision(403, "invalid signature", checked_url=public_url)
    return UpgradeDecision(200, "signature valid", subprotocol, checked_url=public_url)
