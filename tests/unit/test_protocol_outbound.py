from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_agent.errors import OutboundValidationError
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
