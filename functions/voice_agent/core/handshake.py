"""The ``$connect`` decision: accept the WebSocket upgrade only from Twilio, and only for the call
its URL names.

Returning a non-2xx status from the ``$connect`` integration fails the upgrade with that status. An
upgrade whose query names a call (``call_tokens``) must carry that call's token; one naming no call
is accepted unbound (its ``setup`` binds it, checking the ``callToken`` parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voice_agent.call_tokens import CALL_PARAMETER, TOKEN_PARAMETER, SocketClaim, claim_from, derive_key, matches
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
    # The call the socket belongs to, when its URL names one with that call's token (or, with
    # signature checks off locally, names one at all).
    claim: SocketClaim | None = None

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
    claim = claim_from(query)
    if not validation:
        return UpgradeDecision(200, "signature validation disabled (local only)", subprotocol, claim=claim)
    if not public_url or not auth_token:
        return UpgradeDecision(500, "relay public URL or auth token not configured")
    signature = header(headers, SIGNATURE_HEADER)
    if not signature:
        return UpgradeDecision(403, "missing signature", checked_url=public_url)
    if not valid_upgrade(auth_token, public_url, query, signature):
        return UpgradeDecision(403, "invalid signature", checked_url=public_url)
    if claim is None and (CALL_PARAMETER in query or TOKEN_PARAMETER in query):
        return UpgradeDecision(403, "the URL names a call without a well-formed token", checked_url=public_url)
    if claim is not None and not matches(derive_key(auth_token), claim.call_sid, claim.token):
        return UpgradeDecision(403, "the call token does not match the call", checked_url=public_url)
    reason = "signature valid" if claim is None else "signature and call token valid"
    return UpgradeDecision(200, reason, subprotocol, checked_url=public_url, claim=claim)
