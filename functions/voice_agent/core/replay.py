"""What makes two caller messages "the same" for the replay guard (``adapters/dynamo_sockets.py``):
after an application reconnect Twilio replays the events it buffered, and one the previous socket
already took must not be answered twice. Words are compared after case, spacing and punctuation."""

from __future__ import annotations

import hashlib
import re
from typing import Final

_NOT_WORDS: Final = re.compile(r"[\W_]+", re.UNICODE)


def fingerprint(text: str) -> str:
    words = _NOT_WORDS.sub(" ", text.casefold()).strip()
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:20]
