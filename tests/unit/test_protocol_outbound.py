from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_agent.errors import OutboundValidationError
from voice_agent.protocol.live_config import Config, Hints, LanguageSettings, SessionSettings
from voice_agent.protocol.outbound import (
    MAX_FRAME_BYTES,
    End,
    Language,
    Play,
    SendDigits,
    Text,
    encode,
    split_text,
)


def test_wire_shapes_match_the_protocol() -> None:
    assert json.loads(encode(Text("Hello", last=True))) == {"type": "text", "token": "Hello", "last": True}
    assert json.loads(encode(Text(" world", lang="es-ES", interruptible=False, preemptible=True))) == {
        "type": "text",
        "token": " world",
        "last": False,
        "lang": "es-ES",
        "interruptible": False,
        "preemptible": True,
    }
    assert json.loads(encode(Play("https://example.com/a.mp3", loop=0))) == {
        "type": "play",
        "source": "https://example.com/a.mp3",
        "loop": 0,
    }
    assert json.loads(encode(SendDigits("9ww123#"))) == {"type": "sendDigits", "digits": "9ww123#"}
    assert json.loads(encode(Language(tts_language="sv-SE", transcription_language="en-US"))) == {
        "type": "language",
        "ttsLanguage": "sv-SE",
        "transcriptionLanguage": "en-US",
    }
    assert json.loads(encode(End())) == {"type": "end"}
    handoff = json.dumps({"reasonCode": "live-agent-handoff", "reason": "asked"})
    assert json.loads(encode(End(handoff_data=handoff))) == {"type": "end", "handoffData": handoff}


def test_empty_token_closing_a_reply_is_valid() -> None:
    assert json.loads(encode(Text("", last=True)))["token"] == ""


@pytest.mark.parametrize(
    "build",
    [
        lambda: Text(None),  # type: ignore[arg-type]
        lambda: Text("x", last="yes"),  # type: ignore[arg-type]
        lambda: Text("x", lang="english please"),
        lambda: Text("x", interruptible="any"),  # type: ignore[arg-type]
        lambda: Play("ftp://example.com/a.mp3"),
        lambda: Play("not a url"),
        lambda: Play("https://example.com/a.mp3", loop=1001),
        lambda: Play("https://example.com/a.mp3", loop=True),
        lambda: SendDigits(""),
        lambda: SendDigits("12a"),
        lambda: SendDigits("1 2"),
        lambda: Language(),
        lambda: Language(tts_language="??"),
        lambda: End(handoff_data={"reasonCode": "x"}),  # type: ignore[arg-type]
    ],
)
def test_invalid_messages_cannot_be_built(build: object) -> None:
    with pytest.raises(OutboundValidationError):
        build()  # type: ignore[operator]


def test_encode_refuses_frames_over_32kb() -> None:
    with pytest.raises(OutboundValidationError):
        encode(End(handoff_data="x" * MAX_FRAME_BYTES))


@given(st.text(min_size=0, max_size=40_000), st.booleans())
def test_split_text_keeps_every_character_and_fits_frames(text: str, last: bool) -> None:
    parts = split_text(Text(text, last=last, lang="en-US"))
    assert "".join(p.token for p in parts) == text
    assert all(len(encode(p)) <= MAX_FRAME_BYTES for p in parts)
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [last]


def test_split_text_handles_escapes_and_multibyte_characters() -> None:
    text = 'a"\n\\é😀\x01' * 6000
    parts = split_text(Text(text, last=True))
    assert len(parts) > 1
    assert "".join(p.token for p in parts) == text
    assert all(len(encode(p)) <= MAX_FRAME_BYTES for p in parts)


# -- mid-call configuration (2026-10-28): typed, validated, and accepted by the simulated caller --


def _caller_accepts(message: object) -> dict[str, object]:
    from local.caller.frames import validate

    frame = validate(encode(message).decode())  # type: ignore[arg-type]
    return frame.data


def test_config_message_carries_session_and_language_settings() -> None:
    message = Config(
        SessionSettings(interruptible="none", speech_timeout_ms=1500, ignore_backchannel=True, eot_threshold=0.6),
        (LanguageSettings("en-US", hints=("Siobhan", "Nguyen")),),
    )
    assert _caller_accepts(message) == {
        "type": "config",
        "interruptible": "none",
        "speechTimeout": 1500,
        "ignoreBackchannel": True,
        "eotThreshold": 0.6,
        "languages": [{"code": "en-US", "hints": "Siobhan,Nguyen"}],
    }


def test_hints_message_and_a_language_switch_that_declares_its_settings() -> None:
    assert _caller_accepts(Hints(("Siobhan", "N G U Y E N"), language="en-US")) == {
        "type": "hints",
        "hints": "Siobhan,N G U Y E N",
        "language": "en-US",
    }
    assert _caller_accepts(Hints(())) == {"type": "hints", "hints": ""}
    french = LanguageSettings("fr-FR", "Google", "fr-FR-Chirp3-HD-Aoede", "Deepgram", "nova-3-general")
    assert _caller_accepts(Language("fr-FR", "fr-FR", declare=(french,)))["languages"] == [
        {
            "code": "fr-FR",
            "ttsProvider": "Google",
            "voice": "fr-FR-Chirp3-HD-Aoede",
            "transcriptionProvider": "Deepgram",
            "speechModel": "nova-3-general",
        }
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Config(),  # changes nothing
        lambda: Config(SessionSettings(interruptible="sometimes")),  # type: ignore[arg-type]
        lambda: Config(SessionSettings(interrupt_sensitivity="max")),  # type: ignore[arg-type]
        lambda: Config(SessionSettings(speech_timeout_ms=-1)),
        lambda: Config(SessionSettings(speech_timeout_ms=True)),
        lambda: Config(SessionSettings(eot_threshold=1.5)),
        lambda: Config(SessionSettings(dtmf_detection="yes")),  # type: ignore[arg-type]
        lambda: Config(languages=(LanguageSettings("en-US", voice="a"), LanguageSettings("EN-us", voice="b"))),
        lambda: LanguageSettings("en-US"),  # changes nothing
        lambda: LanguageSettings("english", voice="x"),
        lambda: LanguageSettings("en-US", tts_provider="Polly"),
        lambda: LanguageSettings("en-US", voice="has spaces"),
        lambda: Hints(("a,b",)),  # a comma would split the hint
        lambda: Hints(("",)),
        lambda: Hints(("x" * 101,)),
        lambda: Hints(tuple(str(i) for i in range(101))),
        lambda: Hints(["a"]),  # type: ignore[arg-type]
        lambda: Language("fr-FR", declare=(LanguageSettings("de-DE", voice="v"),)),  # declares another language
    ],
)
def test_invalid_configuration_messages_cannot_be_built(build: object) -> None:
    with pytest.raises(OutboundValidationError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "config"},
        {"type": "config", "interruptible": True},
        {"type": "config", "speechTimeout": "1500"},
        {"type": "config", "languages": [{"code": "en-US"}]},
        {"type": "config", "languages": [{"code": "en-US", "accent": "x"}]},
        {"type": "hints", "hints": ["a"]},
        {"type": "language", "ttsLanguage": "fr-FR", "languages": []},
        {"type": "config", "volume": 3},
    ],
)
def test_the_simulated_caller_refuses_malformed_configuration_frames(frame: dict[str, object]) -> None:
    from local.caller.frames import ProtocolError, validate

    with pytest.raises(ProtocolError):
        validate(json.dumps(frame))
