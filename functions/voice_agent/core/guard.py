"""Output guard: every phrase passes here before it is spoken.

- Strips what a TTS voice would read aloud but a caller should never hear: markdown emphasis,
  headings, list bullets, inline code and code blocks, link syntax, URLs (unless allowed), emoji,
  and HTML or SSML tags (ConversationRelay voices obey SSML: an injected ``<break>`` or ``<audio>``
  would be acted on, any other tag read out).
- Refuses to speak text that reproduces the system prompt (any run of ``LEAK_NGRAM`` words
  found in it), whatever the caller or a tool result said to make the model do so.
- Bounds the reply's length.

Stateful per reply (a code block may span phrases); one guard per turn.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

LEAK_NGRAM: Final = 8

_FENCE = re.compile(r"```|~~~")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:[^)]*)\)")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,300}>")
_INLINE_CODE = re.compile(r"`([^`]*)`")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3})(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"(^|\n)\s{0,3}#{1,6}\s+")
_BULLET = re.compile(r"(^|\n)\s*(?:[-*+\u2022]|\d{1,2}[.)])\s+")
_STRAY = re.compile(r"[*_`#|<>~^\\]")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,!?;:])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    text: str  # what may be spoken (possibly empty)
    stop: bool = False  # end the reply after ``text``
    leak: bool = False  # the reply reproduced the system prompt: speak the refusal instead


@dataclass(slots=True)
class OutputGuard:
    system_prompt: str
    max_chars: int
    allow_urls: bool = False
    _ngrams: frozenset[tuple[str, ...]] = field(init=False)
    _in_code: bool = False
    _spoken_chars: int = 0
    _tail: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        words = _words(self.system_prompt)
        self._ngrams = frozenset(tuple(words[i : i + LEAK_NGRAM]) for i in range(len(words) - LEAK_NGRAM + 1))

    def check(self, phrase: str) -> GuardVerdict:
        text = self._strip_markup(phrase)
        if self._leaks(text):
            return GuardVerdict(text="", stop=True, leak=True)
        room = self.max_chars - self._spoken_chars
        if len(text) > room:
            cut = text.rfind(" ", 0, max(room, 0))
            text = text[:cut].rstrip(" ,;:") + "." if cut > 0 else ""
            self._spoken_chars = self.max_chars
            return GuardVerdict(text=text, stop=True)
        self._spoken_chars += len(text)
        return GuardVerdict(text=text)

    def _strip_markup(self, phrase: str) -> str:
        out: list[str] = []
        pos = 0
        for match in _FENCE.finditer(phrase):  # drop code blocks, even across phrases
            if not self._in_code:
                out.append(phrase[pos : match.start()])
            self._in_code = not self._in_code
            pos = match.end()
        if not self._in_code:
            out.append(phrase[pos:])
        text = "".join(out)
        text = _MD_LINK.sub(r"\1", text)
        text = _TAG.sub("", text)  # before URLs: a tag's attributes may hold one
        if not self.allow_urls:
            text = _URL.sub("", text)
        text = _INLINE_CODE.sub(r"\1", text)
        text = _EMPHASIS.sub(r"\2", text)
        text = _HEADING.sub(r"\1", text)
        text = _BULLET.sub(r"\1", text)
        text = _STRAY.sub("", text)
        text = "".join(ch for ch in text if unicodedata.category(ch) not in ("So", "Cs", "Co"))
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text.replace("\n", " "))
        text = _SPACES.sub(" ", text)
        if phrase[:1].isspace() and text and not text[:1].isspace():
            text = " " + text  # keep the word boundary with the previous phrase
        return text

    def _leaks(self, text: str) -> bool:
        words = self._tail + _words(text)
        found = any(tuple(words[i : i + LEAK_NGRAM]) in self._ngrams for i in range(len(words) - LEAK_NGRAM + 1))
        self._tail = words[-(LEAK_NGRAM - 1) :]
        return found
