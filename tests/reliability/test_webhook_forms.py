"""Bad webhook requests against the running webhook (uvicorn, as in ``make dev``): random forms,
missing fields, unsigned, forged, tampered and replayed signatures, oversized and chunked bodies,
wrong content types and encodings. The answer is always a bare refusal (400, 403, 405, 413, 415)
or a valid TwiML document, never a 5xx and never an unexpected exception in the logs."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.caller import twiml
from local.stack import LocalStack
from tests.reliability.conftest import AUTH_TOKEN, FULL
from tests.support.local_calls import JsonLogCapture, captured_logs
from voice_agent.signatures import sign
from voice_agent.webhook.app import MAX_BODY_BYTES, MAX_FIELDS

PATHS = ("/voice", "/action", "/dial-status")
EXAMPLES = 1000 if FULL else 150
REPORT = Path(".local/reliability/bad-webhooks.json")
TWILIO_FIELDS = [
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "Direction",
    "CallStatus",
    "AnsweredBy",
    "SessionId",
    "SessionStatus",
    "SessionDuration",
    "HandoffData",
    "ErrorCode",
    "ErrorMessage",
    "DialCallStatus",
]
SID = "CA" + "ab" * 16
GOOD = {
    "/voice": {"CallSid": SID, "From": "+15550001111", "To": "+15550002222", "CallStatus": "ringing"},
    "/action": {"CallSid": SID, "CallStatus": "in-progress", "SessionId": "VX1", "SessionStatus": "ended"},
    "/dial-status": {"CallSid": SID, "DialCallStatus": "completed"},
}
tried: Counter[str] = Counter()


@pytest.fixture(scope="module")
def http(stack: LocalStack) -> Iterator[httpx.Client]:
    assert stack.urls.webhook is not None
    with httpx.Client(base_url=stack.urls.webhook, timeout=15) as client:
        yield client
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"requests": sum(tried.values()), "by_kind": dict(tried)}, indent=2))


@pytest.fixture
def logs() -> Iterator[JsonLogCapture]:
    with captured_logs() as capture:
        yield capture


def post(
    http: httpx.Client, stack: LocalStack, path: str, form: dict[str, str], *, token: str | None = AUTH_TOKEN
) -> httpx.Response:
    url = f"{stack.urls.webhook}{path}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["X-Twilio-Signature"] = sign(token, url, form)
    return http.post(path, content=urlencode(form), headers=headers)


def assert_sane(response: httpx.Response, logs: JsonLogCapture) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code == 200:
        verbs = twiml.parse(response.text)
        assert verbs
        assert not any(isinstance(v, twiml.Unsupported) for v in verbs)
    else:
        assert response.content == b""  # a refusal says nothing
    assert "webhook failed" not in logs.text  # the app's last-resort handler never ran


form_values = st.text(max_size=60) | st.sampled_from(["", SID, "CA1", "completed", "failed", "ended", "{}", "null"])
forms = st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=20), form_values, max_size=12)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), form=forms)
def test_any_signed_form_gets_twiml_or_a_bare_400(
    http: httpx.Client, stack: LocalStack, logs: JsonLogCapture, path: str, form: dict[str, str]
) -> None:
    # Signed with the real token: what only Twilio could send, with any fields missing or odd.
    tried["signed random form"] += 1
    assert_sane(post(http, stack, path, form), logs)


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), form=forms, token=st.none() | st.text(min_size=1, max_size=40))
def test_any_form_without_the_right_signature_is_a_bare_403(
    http: httpx.Client, stack: LocalStack, path: str, form: dict[str, str], token: str | None
) -> None:
    tried["unsigned or wrongly signed form"] += 1
    response = post(http, stack, path, form, token=None if token == AUTH_TOKEN else token)
    assert response.status_code == 403
    assert response.content == b""


@pytest.mark.parametrize("path", PATHS)
def test_each_required_field_missing_is_a_bare_400_and_a_complete_form_is_answered(
    http: httpx.Client, stack: LocalStack, logs: JsonLogCapture, path: str
) -> None:
    assert post(http, stack, path, GOOD[path]).status_code == 200
    tried["required field missing"] += 1
    response = post(http, stack, path, {k: v for k, v in GOOD[path].items() if k != "CallSid"})
    assert (response.status_code, response.content) == (400, b"")
    for bad_sid in ("", "CA", "not-a-sid", "CA" + "x" * 200, "CA1 OR 1=1", "../../etc/passwd"):
        tried["malformed CallSid"] += 1
        response = post(http, stack, path, {**GOOD[path], "CallSid": bad_sid})
        assert (response.status_code, response.content) == (400, b""), bad_sid
    assert "webhook failed" not in logs.text


@pytest.mark.parametrize("path", PATHS)
def test_signatures_tampered_or_made_for_another_request_are_refused(
    http: httpx.Client, stack: LocalStack, path: str
) -> None:
    url = f"{stack.urls.webhook}{path}"
    form = GOOD[path]
    good = sign(AUTH_TOKEN, url, form)
    variants = {
        "a field changed": ({**form, "CallSid": "CA" + "cd" * 16}, good),
        "a field added": ({**form, "HandoffData": '{"reasonCode":"x"}'}, good),
        "a field removed": (dict(list(form.items())[:-1]), good),
        "signed for another path": (
            form,
            sign(AUTH_TOKEN, url.replace(path, "/voice" if path != "/voice" else "/action"), form),
        ),
        "signed over https": (form, sign(AUTH_TOKEN, url.replace("http://", "https://"), form)),
        "signed with a query": (form, sign(AUTH_TOKEN, url + "?x=1", form)),
        "another account's token": (form, sign("another-accounts-auth-token", url, form)),
        "truncated": (form, good[:-4]),
        "empty": (form, ""),
    }
    for name, (sent, signature) in variants.items():
        tried[f"signature: {name}"] += 1
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        response = http.post(path, content=urlencode(sent), headers=headers)
        assert (response.status_code, response.content) == (403, b""), name
    # The genuine request, replayed verbatim, is indistinguishable from Twilio's (no timestamp in
    # the scheme): it is answered, and answering it again changes nothing (see test_cross_call).
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": good}
    first = http.post(path, content=urlencode(form), headers=headers)
    again = http.post(path, content=urlencode(form), headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.text == again.text


@pytest.mark.parametrize("path", PATHS)
def test_oversized_bodies_are_refused_before_they_are_read(
    http: httpx.Client, stack: LocalStack, logs: JsonLogCapture, path: str
) -> None:
    big = {**GOOD[path], "Junk": "x" * (MAX_BODY_BYTES + 1)}
    url = f"{stack.urls.webhook}{path}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(AUTH_TOKEN, url, big)}
    tried["oversized body"] += 1
    response = http.post(path, content=urlencode(big), headers=headers)
    assert (response.status_code, response.content) == (413, b"")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known while reading
        body = urlencode(big).encode()
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    tried["oversized chunked body"] += 1
    response = http.post(path, content=chunks(), headers=headers)
    assert (response.status_code, response.content) == (413, b"")
    # A declared length far past the limit is refused at once, before a byte of the body is read.
    tried["huge declared Content-Length"] += 1
    host, port = http.base_url.host, http.base_url.port
    with socket.create_connection((host, port or 80), timeout=5) as raw:
        raw.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {100 * MAX_BODY_BYTES}\r\n\r\n".encode()
        )
        assert raw.recv(64).startswith(b"HTTP/1.1 413")
    assert "webhook failed" not in logs.text


@pytest.mark.parametrize("path", PATHS)
def test_wrong_content_types_encodings_and_methods_are_refused(
    http: httpx.Client, stack: LocalStack, logs: JsonLogCapture, path: str
) -> None:
    url = f"{stack.urls.webhook}{path}"
    form = GOOD[path]
    signed = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}
    for content_type in ("application/json", "text/plain", "multipart/form-data; boundary=x", "text/xml", ""):
        tried["wrong content type"] += 1
        response = http.post(path, content=urlencode(form), headers={**signed, "Content-Type": content_type})
        assert (response.status_code, response.content) == (415, b""), content_type
    tried["JSON body"] += 1
    assert http.post(path, json=form, headers=signed).status_code == 415
    # Twilio's own header carries a charset; that is still a form.
    charset = {**signed, "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    assert http.post(path, content=urlencode(form), headers=charset).status_code == 200
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    tried["not UTF-8"] += 1
    response = http.post(path, content=b"CallSid=\xff\xfe\xfa", headers={**form_type, **signed})
    assert (response.status_code, response.content) == (400, b"")
    tried["too many fields"] += 1
    many = "&".join(f"f{i}=v" for i in range(MAX_FIELDS + 1))
    assert http.post(path, content=many, headers={**form_type, **signed}).status_code == 400
    for method in ("GET", "PUT", "DELETE"):
        tried["wrong method"] += 1
        assert http.request(method, path, headers=signed).status_code == 405
    assert "webhook failed" not in logs.text
