"""The error-code table of /action's recovery (core/recovery.py), row by row."""

from __future__ import annotations

import pytest

from voice_agent.core.recovery import RECOVERY_BY_CODE, Recovery, classify


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("64105", "Websocket ended", Recovery.SAME),
        ("39001", "Network connection failed", Recovery.SAME),
        ("64114", "ASR provider connection error", Recovery.BACKUP_STT),
        ("64101", "Invalid ConversationRelay parameter", Recovery.KNOWN_GOOD),
        ("64106", "Invalid argument: voice not supported by the TTS provider", Recovery.KNOWN_GOOD),
        # No readable source names the TTS provider's code: its message says what failed.
        ("64199", "ConversationRelay: TTS provider connection error", Recovery.BACKUP_TTS),
        (None, "text-to-speech provider unavailable", Recovery.BACKUP_TTS),
        ("64198", "Speech recognition provider dropped", Recovery.BACKUP_STT),
        ("64199", "Something else entirely", Recovery.UNKNOWN),
        (None, None, Recovery.UNKNOWN),
        ("", "", Recovery.UNKNOWN),
    ],
)
def test_each_row_of_the_table(code: str | None, message: str | None, expected: Recovery) -> None:
    assert classify(code, message).recovery is expected


def test_a_known_code_wins_over_its_message() -> None:
    # 64105 says the socket ended even if the message mentions a provider.
    assert classify("64105", "TTS provider closed the websocket").recovery is Recovery.SAME


def test_only_failed_providers_and_refused_configurations_are_remembered() -> None:
    assert {r.fallback for r in Recovery} == {None, "stt", "tts", "config"}
    assert Recovery.SAME.fallback is None and Recovery.UNKNOWN.fallback is None
    assert set(RECOVERY_BY_CODE) == {"64105", "39001", "64114", "64101", "64106"}
