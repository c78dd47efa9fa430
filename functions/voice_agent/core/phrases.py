"""Coalesce streamed LLM tokens into speakable phrases.

One frame per token costs an API Gateway message and a Lambda-to-API round trip each (about 200 a
minute per call) and buys nothing: Twilio synthesises speech per clause anyway. One frame per
reply would make the caller wait for the whole reply. The middle: send the **first token at once**
(time to first audio is what callers feel; Twilio starts speaking on what it has and joins what
follows), then send later phrases at clause boundaries or when a time window runs out.

A boundary is punctuation followed by whitespace: "3.5" or "e.g." inside a word never splits. The
punctuation is held until the next token shows whitespace, at most one token interval, or until
the window expires. Tokens are never trimmed: spaces carry meaning for TTS.

Pure: the caller passes the clock in, so tests drive time exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

CLAUSE_END: Final = frozenset(",;:.!?\u2014\u3001\u3002\uff01\uff1f\uff0c\uff1b\uff1a")
SENTENCE_END: Final = frozenset(".!?\u3002\uff01\uff1f")


@dataclass(frozen=True, slots=True)
class PhrasePolicy:
    # First phrase: the first token, at once. With ``first_immediate=False`` it waits for the
    # first clause boundary, this many words, or the first window instead.
    first_immediate: bool = True
    first_max_words: int = 4
    first_window_s: float = 0.15
    # Later phrases: a clause boundary once the phrase has this many characters (sentence ends
    # always flush), the window since the phrase's first token, or a hard length cap.
    min_chars: int = 24
    window_s: float = 0.4
    max_chars: int = 240


@dataclass(slots=True)
class PhraseCoalescer:
    policy: PhrasePolicy = field(default_factory=PhrasePolicy)
    _buffer: str = ""
    _started_at: float | None = None
    _emitted: int = 0
    _now: float = 0.0

    @property
    def pending(self) -> str:
        return self._buffer

    @property
    def phrases_emitted(self) -> int:
        return self._emitted

    def feed(self, token: str, now: float) -> list[str]:
        """Add a token; return the phrases that became ready (in order)."""
        if not token:
            return []
        self._now = now
        if self._emitted == 0 and self.policy.first_immediate and (self._buffer + token).strip():
            self._buffer += token
            return [self._take(len(self._buffer))]
        out: list[str] = []
        # A token starting with whitespace completes the buffer up to a word boundary: it may
        # now be a whole phrase.
        if (
            self._buffer.strip()
            and token[0].isspace()
            and (self._ends_at_boundary() or self._first_phrase_long_enough())
        ):
            out.append(self._take(len(self._buffer)))
        if self._started_at is None:
            self._started_at = now
        self._buffer += token
        out.extend(self._split_inside())
        if len(self._buffer) >= self.policy.max_chars:
            cut = self._last_space()
            if cut > 0:
                out.append(self._take(cut))
        return [p for p in out if p]

    def poll(self, now: float) -> list[str]:
        """Flush on time: the window since the phrase's first token has run out."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        self._now = now
        if self._buffer[-1] in CLAUSE_END:
            return [p for p in [self._take(len(self._buffer))] if p]
        cut = self._last_space()
        if cut <= 0:
            return []  # a single, possibly unfinished word: wait for the next token
        return [p for p in [self._take(cut)] if p]

    def deadline(self) -> float | None:
        """When :meth:`poll` should next be called, or ``None`` if nothing is pending."""
        if not self._buffer.strip() or self._started_at is None:
            return None
        window = self.policy.first_window_s if self._emitted == 0 else self.policy.window_s
        return self._started_at + window

    def flush(self) -> str | None:
        """End of stream: whatever is left, as the final phrase."""
        if not self._buffer:
            return None
        phrase, self._buffer, self._started_at = self._buffer, "", None
        if phrase.strip():
            self._emitted += 1
        return phrase

    # -- internals ---------------------------------------------------------------------------

    def _ends_at_boundary(self) -> bool:
        stripped = self._buffer.rstrip()
        if not stripped or stripped[-1] not in CLAUSE_END:
            return False
        if self._emitted == 0 or stripped[-1] in SENTENCE_END:
            return True
        return len(stripped.strip()) >= self.policy.min_chars

    def _first_phrase_long_enough(self) -> bool:
        return self._emitted == 0 and len(self._buffer.split()) >= self.policy.first_max_words

    def _split_inside(self) -> list[str]:
        """A token may carry a boundary inside it ("Yes. I"): split there."""
        out: list[str] = []
        while True:
            cut = self._inner_boundary()
            if cut <= 0:
                return out
            out.append(self._take(cut))

    def _inner_boundary(self) -> int:
        buf = self._buffer
        for i in range(len(buf) - 1):
            if buf[i] in CLAUSE_END and buf[i + 1].isspace():
                head = buf[: i + 1]
                if self._emitted == 0 or buf[i] in SENTENCE_END or len(head.strip()) >= self.policy.min_chars:
                    return i + 1
        return 0

    def _last_space(self) -> int:
        """Index of the last whitespace that has words before it (0 if none)."""
        for i in range(len(self._buffer) - 1, 0, -1):
            if self._buffer[i].isspace() and self._buffer[:i].strip():
                return i
        return 0

    def _take(self, n: int) -> str:
        """Emit the first ``n`` characters as a phrase; the rest starts the next phrase now."""
        phrase = self._buffer[:n]
        if not phrase.strip():
            return ""
        self._buffer = self._buffer[n:]
        self._started_at = self._now if self._buffer else None
        self._emitted += 1
        return phrase
