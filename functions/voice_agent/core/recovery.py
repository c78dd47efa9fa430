"""How ``/action`` resumes a failed relay session, read from Twilio's ``ErrorCode``: one table.

| ``ErrorCode``                 | What failed                                   | Resume with                     |
|-------------------------------|-----------------------------------------------|---------------------------------|
| 64105                         | the WebSocket ended                           | the same configuration          |
| 39001                         | the network connection to the WebSocket       | the same configuration          |
| 64114                         | the speech recognition (ASR) provider         | the language's backup STT       |
| a TTS provider failure        | the text-to-speech provider                   | the language's backup voice     |
| 64101                         | an invalid ``<ConversationRelay>`` parameter  | a known-good configuration once,|
| 64106                         | an invalid argument at media setup            | then a person (or goodbye)      |
| any other code, or none       | unknown                                       | the same configuration          |

Sources (``docs/protocol.md``, "Error codes"): <https://www.twilio.com/docs/api/errors/64105>,
<https://www.twilio.com/docs/api/errors/64114> ("temporarily switch to a different ASR provider"),
<https://www.twilio.com/docs/api/errors/64101>, <https://www.twilio.com/docs/api/errors/64106>; 39001
is listed on Twilio's ``<ConversationRelay>`` page among ``/action``'s error codes; the failover
best-practices post (2026-11-04) says to answer a provider error from the action URL with another
provider. **Unverified:** no readable source gives the TTS provider's error code, so a TTS failure is
recognised by its ``ErrorMessage`` (text-to-speech, TTS, synthesis); an STT failure under an unknown
code is recognised the same way. Backups are cumulative over the call: once a provider failed, every
later ``<Connect>`` of the call uses its backup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Recovery(StrEnum):
    SAME = "same"  # resume as configured (the socket, not the speech, failed)
    BACKUP_STT = "stt"  # the speech recognition provider failed: its backup from now on
    BACKUP_TTS = "tts"  # the text-to-speech provider failed: the backup voice from now on
    KNOWN_GOOD = "config"  # Twilio refused the configuration: once a known-good one, then a person
    UNKNOWN = "unknown"  # a code this table does not know: as configured (the behaviour before it)

    @property
    def fallback(self) -> str | None:
        """What the call item remembers about it (``speechFallbacks``), if anything."""
        return self.value if self in (Recovery.BACKUP_STT, Recovery.BACKUP_TTS, Recovery.KNOWN_GOOD) else None


@dataclass(frozen=True, slots=True)
class Rule:
    recovery: Recovery
    what: str  # for the log line


RECOVERY_BY_CODE: Final[Mapping[str, Rule]] = {
    "64105": Rule(Recovery.SAME, "websocket ended"),
    "39001": Rule(Recovery.SAME, "network connection to the websocket failed"),
    "64114": Rule(Recovery.BACKUP_STT, "speech recognition provider failed"),
    "64101": Rule(Recovery.KNOWN_GOOD, "invalid ConversationRelay parameter"),
    "64106": Rule(Recovery.KNOWN_GOOD, "invalid argument at media setup"),
}
_TTS_MESSAGE: Final = re.compile(r"\b(tts|text[- ]to[- ]speech|speech synthesis|synthesi[sz]er?)\b", re.IGNORECASE)
_STT_MESSAGE: Final = re.compile(r"\b(asr|stt|speech[- ]to[- ]text|speech recognition|transcription)\b", re.IGNORECASE)
TTS_FAILURE: Final = Rule(Recovery.BACKUP_TTS, "text-to-speech provider failed")
STT_FAILURE: Final = Rule(Recovery.BACKUP_STT, "speech recognition provider failed")
UNKNOWN: Final = Rule(Recovery.UNKNOWN, "unknown error")


def classify(error_code: str | None, error_message: str | None = None) -> Rule:
    """The table's row for a failed session: by code first, then (for a code the table does not
    know) by what ``ErrorMessage`` says failed."""
    code = (error_code or "").strip()
    rule = RECOVERY_BY_CODE.get(code)
    if rule is not None:
        return rule
    message = error_message or ""
    if _TTS_MESSAGE.search(message):
        return TTS_FAILURE
    if _STT_MESSAGE.search(message):
        return STT_FAILURE
    return UNKNOWN
