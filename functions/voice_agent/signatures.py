"""Twilio request signatures (``X-Twilio-Signature``) on both legs: webhooks and the WebSocket
upgrade. The algorithm is twilio-python's ``RequestValidator`` (HMAC-SHA1 over the URL plus sorted
form parameters, base64); this module only decides *which* URL and parameters to check.

The URL is the public one Twilio dialed, taken from configuration, never rebuilt from the request:
behind API Gateway the host, scheme and path the code sees differ from what Twilio signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "x-twilio-signature"

FormParams = Mapping[str, str | Sequence[str]]


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup (API Gateway keeps the client's casing)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class _MultiValue(dict[str, list[str]]):
    """A form with repeated fields, in the shape ``RequestValidator`` reads (``getall``)."""

    @classmethod
    def of(cls, params: FormParams | None) -> _MultiValue:
        return cls({k: [v] if isinstance(v, str) else list(v) for k, v in (params or {}).items()})

    def getall(self, name: str) -> list[str]:
        return self[name]


def valid_webhook(auth_token: str, url: str, params: FormParams, signature: str | None) -> bool:
    """A form-encoded webhook: the full URL (query included) and the POST parameters."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, _MultiValue.of(params), signature))


def valid_upgrade(auth_token: str, public_url: str, query: Mapping[str, str] | None, signature: str | None) -> bool:
    """The WebSocket handshake: no body, the ``wss://`` URL with its stage path.

    Twilio's sources disagree on URLs with a query string (``docs/protocol.md``, "Signatures"), so
    every form is accepted: the full URL as the TwiML writes it (its query names sorted, as
    ``call_tokens.relay_url`` writes them), the bare URL with the query as params, or the bare URL
    alone (a signer that drops the query). The query then is not covered by the signature; what it
    claims (a call) is checked on its own (``call_tokens``).
    """
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    if not query:
        return bool(validator.validate(public_url, {}, signature))
    full = f"{public_url}?{urlencode(sorted(query.items()))}"
    return bool(
        validator.validate(full, {}, signature)
        or validator.validate(public_url, dict(query), signature)
        or validator.validate(public_url, {}, signature)
    )


def sign(auth_token: str, url: str, params: FormParams | None = None) -> str:
    """The signature Twilio would send (for the simulated caller and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, _MultiValue.of(params)))
