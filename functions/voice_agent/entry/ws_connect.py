"""``$connect``: accept the WebSocket upgrade only when Twilio signed it, for the call its URL names;
then note which call the socket belongs to (so it is bound even if no ``setup`` ever arrives, as
after Twilio's application reconnect).

The same function is the route's ``REQUEST`` authorizer (``authorize``, told apart by the event's
``methodArn``): it makes the same decision, and its context names the socket's call, which API
Gateway adds to every later event of the connection. Any execution environment of the message
function then knows a frame's call without a read, and reads its history beside the turn's
generation update instead of after it (``core/turn_engine.py``). The integration decides again:
an upgrade reaches it only if the authorizer allowed it, and a stand-in without authorizers (or a
fork that removes it) stays guarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from voice_agent import log, wiring
from voice_agent.call_tokens import SocketClaim
from voice_agent.core.handshake import UpgradeDecision, decide_upgrade
from voice_agent.entry.events import AUTHORIZED_CALL, ConnectEvent
from voice_agent.log import logger
from voice_agent.settings import load_settings

Decide = Callable[[ConnectEvent], UpgradeDecision]
Prebind = Callable[[str, SocketClaim], bool]


def _decide(event: ConnectEvent) -> UpgradeDecision:
    settings = load_settings()
    wiring.warn_if_unsigned()
    token = wiring.twilio_auth_token() if settings.signature_validation else None
    return decide_upgrade(
        headers=event.headers,
        query=event.query,
        public_url=settings.relay_public_url,
        auth_token=token,
        validation=settings.signature_validation,
    )


def _prebind(connection_id: str, claim: SocketClaim) -> bool:
    return wiring.session_store().prebind_connection(connection_id, claim.call_sid, claim.session)


def handler(
    event: Mapping[str, Any], context: object, decide: Decide = _decide, prebind: Prebind = _prebind
) -> dict[str, Any]:
    if ConnectEvent.is_authorization(event):
        return authorize(event, context, decide)
    log.start_invocation(context)
    checked = _checked(event, decide)
    if checked is None:
        return {"statusCode": 500}
    connect, decision = checked
    if not decision.allowed:
        return {"statusCode": decision.status_code}
    reconnect = _note_call(connect.connection_id, decision.claim, prebind)
    logger.info("websocket upgrade accepted", extra={"reason": decision.reason, "app_reconnect": reconnect})
    response: dict[str, Any] = {"statusCode": 200}
    if decision.subprotocol:
        response["headers"] = {"Sec-WebSocket-Protocol": decision.subprotocol}
    return response


def authorize(event: Mapping[str, Any], context: object, decide: Decide = _decide) -> dict[str, Any]:
    """The ``$connect`` route's ``REQUEST`` authorizer: an IAM policy allowing or denying the
    upgrade (API Gateway answers a denial with 403), and, allowed, the socket's call as context."""
    log.start_invocation(context)
    resource = str(event.get("methodArn") or "*")
    checked = _checked(event, decide)
    if checked is None:
        return _policy("Deny", resource, "unknown")
    _, decision = checked
    if not decision.allowed:
        return _policy("Deny", resource, "refused")
    claim = decision.claim
    if claim is None:
        return _policy("Allow", resource, "unbound")  # no call named: its setup binds it
    log.bind(call_sid=claim.call_sid)
    policy = _policy("Allow", resource, claim.call_sid)
    policy["context"] = {AUTHORIZED_CALL: claim.call_sid, "session": claim.session}
    return policy


def _checked(event: Mapping[str, Any], decide: Decide) -> tuple[ConnectEvent, UpgradeDecision] | None:
    """The upgrade and the decision on it, a refusal logged; ``None`` if deciding failed (logged:
    the upgrade is refused). The authorizer and the integration decide alike."""
    try:
        connect = ConnectEvent.parse(event)
        log.bind(connection_id=connect.connection_id)
        decision = decide(connect)
    except Exception:
        logger.exception("$connect failed; upgrade refused", extra={"authorizer": ConnectEvent.is_authorization(event)})
        return None
    if not decision.allowed:
        _log_refusal(connect, decision)
    return connect, decision


def _policy(effect: str, resource: str, principal: str) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}


def _log_refusal(connect: ConnectEvent, decision: UpgradeDecision) -> None:
    # What to compare with what Twilio sent: the URL the signature had to be over, and the names
    # (never the values) of the headers and query keys that arrived.
    logger.warning(
        "websocket upgrade refused",
        extra={
            "status": decision.status_code,
            "reason": decision.reason,
            "checked_url": decision.checked_url,
            "header_names": sorted({name.lower() for name in connect.headers}),
            "query_keys": sorted(connect.query),
            "authorizer": connect.method_arn is not None,
        },
    )


def _note_call(connection_id: str, claim: SocketClaim | None, prebind: Prebind) -> bool | None:
    """Best effort: if DynamoDB cannot take it, the socket's ``setup`` still binds it."""
    if claim is None:
        return None
    log.bind(call_sid=claim.call_sid)
    try:
        return prebind(connection_id, claim)
    except Exception:
        logger.exception("socket not pre-bound to its call; its setup will bind it")
        return None
