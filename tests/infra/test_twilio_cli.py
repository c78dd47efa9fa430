"""The Twilio commands, offline: a fake HTTP client records the REST calls twilio-python makes."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from twilio.http import HttpClient
from twilio.http.response import Response

from infra import outputs
from infra.cli import outbound_call, stack_outputs, twilio_number

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "tok_" + "s3cr3t" * 5
VOICE_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/voice"
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"


class FakeTwilio(HttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Answers twilio-python's requests from a table of (method, path suffix) -> JSON body."""

    def __init__(self, answers: Mapping[tuple[str, str], tuple[int, Mapping[str, Any]]]) -> None:
        super().__init__(logger=logging.getLogger("fake-twilio"), is_async=False)
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def request(  # noqa: PLR0917 - twilio's HttpClient.request signature
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.calls.append({"method": method, "uri": uri, "params": params or {}, "data": data or {}, "auth": auth})
        path = urlsplit(uri).path
        for (m, suffix), (status, body) in self.answers.items():
            if m == method and path.endswith(suffix):
                return Response(status, json.dumps(body))
        return Response(404, json.dumps({"code": 20404, "message": "not found", "status": 404}))


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Twilio commands must go through the fake client in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)


@pytest.fixture
def outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(
        json.dumps({"VoiceAgent": {outputs.WEBHOOK_VOICE_URL: VOICE_URL, outputs.RELAY_URL: "wss://x/prod"}})
    )
    return path


def _number(**fields: Any) -> dict[str, Any]:
    return {
        "sid": "PN" + "1" * 32,
        "account_sid": ACCOUNT_SID,
        "phone_number": "+15551234567",
        "voice_url": "https://demo.twilio.com/welcome/voice/",
        "voice_method": "POST",
        "voice_application_sid": None,
        "trunk_sid": None,
        **fields,
    }


def _page(*numbers: dict[str, Any]) -> dict[str, Any]:
    return {"incoming_phone_numbers": list(numbers), "next_page_uri": None, "page": 0, "page_size": 2, "start": 0}


def _assert_no_credentials(*texts: str) -> None:
    for text in texts:
        assert AUTH_TOKEN not in text
        assert ACCOUNT_SID not in text


def test_points_the_number_at_the_stacks_voice_url(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sid = _number()["sid"]
    fake = FakeTwilio(
        {
            ("GET", "/IncomingPhoneNumbers.json"): (200, _page(_number())),
            ("POST", f"/IncomingPhoneNumbers/{sid}.json"): (200, _number(voice_url=VOICE_URL)),
        }
    )
    code = twilio_number.main(["--number", "+1 (555) 123-4567", "--stack-outputs", str(outputs_file)], http_client=fake)
    out, err = capsys.readouterr()
    assert code == 0, err
    lookup, update = fake.calls
    assert lookup["method"] == "GET"
    assert lookup["uri"] == f"{API}/IncomingPhoneNumbers.json"
    assert lookup["params"]["PhoneNumber"] == "+15551234567"
    assert update["method"] == "POST"
    assert update["uri"] == f"{API}/IncomingPhoneNumbers/{sid}.json"
    assert update["data"] == {"VoiceUrl": VOICE_URL, "VoiceMethod": "POST"}
    assert all(c["auth"] == (ACCOUNT_SID, AUTH_TOKEN) for c in fake.calls)  # credentials go to Twilio only
    assert VOICE_URL in out
    _assert_no_credentials(out, err)


def test_unties_a_number_from_a_twiml_app(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sid = _number()["sid"]
    fake = FakeTwilio(
        {
            ("GET", "/IncomingPhoneNumbers.json"): (200, _page(_number(voice_application_sid="AP" + "2" * 32))),
            ("POST", f"/IncomingPhoneNumbers/{sid}.json"): (200, _number(voice_url=VOICE_URL)),
        }
    )
    assert twilio_number.main(["--number", "+15551234567", "--stack-outputs", str(outputs_file)], http_client=fake) == 0
    assert fake.calls[1]["data"] == {"VoiceUrl": VOICE_URL, "VoiceMethod": "POST", "VoiceApplicationSid": ""}
    assert "TwiML App" in capsys.readouterr().out


def test_a_number_not_in_the_account_is_an_error(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeTwilio({("GET", "/IncomingPhoneNumbers.json"): (200, _page())})
    assert twilio_number.main(["--number", "+15550000000", "--stack-outputs", str(outputs_file)], http_client=fake) == 2
    assert [c["method"] for c in fake.calls] == ["GET"]  # nothing was changed
    _, err = capsys.readouterr()
    assert "not a phone number of this Twilio account" in err
    _assert_no_credentials(err)


def test_twilio_errors_are_reported_without_the_request_url(
    outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeTwilio(
        {("GET", "/IncomingPhoneNumbers.json"): (401, {"code": 20003, "message": "Authenticate", "status": 401})}
    )
    assert twilio_number.main(["--number", "+15551234567", "--stack-outputs", str(outputs_file)], http_client=fake) == 1
    out, err = capsys.readouterr()
    assert "HTTP 401" in err
    assert "20003" in err
    _assert_no_credentials(out, err)


def test_missing_credentials_name_the_variables_only(
    outputs_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    fake = FakeTwilio({})
    assert twilio_number.main(["--number", "+15551234567", "--stack-outputs", str(outputs_file)], http_client=fake) == 2
    assert fake.calls == []
    _, err = capsys.readouterr()
    assert "TWILIO_AUTH_TOKEN" in err
    _assert_no_credentials(err)


def test_places_an_outbound_call_through_the_agent(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_sid = "CA" + "3" * 32
    fake = FakeTwilio(
        {("POST", "/Calls.json"): (201, {"sid": call_sid, "account_sid": ACCOUNT_SID, "status": "queued"})}
    )
    argv = ["--to", "+15557654321", "--from", "+15551234567", "--stack-outputs", str(outputs_file)]
    assert outbound_call.main(argv, http_client=fake) == 0
    (call,) = fake.calls
    assert call["method"] == "POST"
    assert call["uri"] == f"{API}/Calls.json"
    assert call["data"] == {"To": "+15557654321", "From": "+15551234567", "Url": VOICE_URL, "Method": "POST"}
    out, err = capsys.readouterr()
    assert call_sid in out
    _assert_no_credentials(out, err)


def test_outbound_call_with_answering_machine_detection(outputs_file: Path) -> None:
    fake = FakeTwilio({("POST", "/Calls.json"): (201, {"sid": "CA" + "4" * 32, "account_sid": ACCOUNT_SID})})
    argv = ["--to", "+15557654321", "--from", "+15551234567", "--stack-outputs", str(outputs_file)]
    argv += ["--machine-detection", "DetectMessageEnd", "--machine-detection-timeout", "20"]
    assert outbound_call.main(argv, http_client=fake) == 0
    data = fake.calls[0]["data"]
    assert data["MachineDetection"] == "DetectMessageEnd"
    assert data["MachineDetectionTimeout"] == 20
    assert data["Url"] == VOICE_URL


def test_bad_numbers_are_refused_before_any_request(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeTwilio({})
    argv = ["--to", "5557654321", "--from", "+15551234567", "--stack-outputs", str(outputs_file)]
    assert outbound_call.main(argv, http_client=fake) == 2
    assert fake.calls == []
    assert "E.164" in capsys.readouterr().err


def test_outputs_file_problems_are_explained(tmp_path: Path) -> None:
    with pytest.raises(stack_outputs.CliError, match="make deploy"):
        stack_outputs.load_outputs(tmp_path / "missing.json")
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"A": {}, "B": {}}))
    with pytest.raises(stack_outputs.CliError, match="--stack"):
        stack_outputs.load_outputs(two)
    assert stack_outputs.load_outputs(two, "B") == {}


def test_outputs_can_be_printed_one_by_one(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack_outputs.main([str(outputs_file), "--get", outputs.WEBHOOK_VOICE_URL]) == 0
    assert capsys.readouterr().out.strip() == VOICE_URL
    assert stack_outputs.main([str(outputs_file)]) == 0
    assert "put-secret-value" in capsys.readouterr().out


def test_a_refused_call_says_why_without_credentials(outputs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refusal = {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
    fake = FakeTwilio({("POST", "/Calls.json"): (400, refusal)})
    argv = ["--to", "+15557654321", "--from", "+15551234567", "--stack-outputs", str(outputs_file)]
    assert outbound_call.main(argv, http_client=fake) == 1
    out, err = capsys.readouterr()
    assert "HTTP 400, error 21211" in err
    assert "Invalid 'To' Phone Number" in err
    _assert_no_credentials(out, err)
