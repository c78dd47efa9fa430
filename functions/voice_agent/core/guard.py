"""Output guard: every phrase passes here before it is spoken.

- Strips what a TTS voice would read aloud but a caller should never hear: markdown emphasis,
  headings, list bullets, inline code and code blocks, link syntax, URLs (unless allowed), emoji,
  and HTML or SSML tags (ConversationRelay voices obey SSML: an injected ``<break>`` or ``<audio>``
  would be acted on, any other tag read out).
- Refuses to speak text that reproduces the system prompt, whatever the caller or a tool result
  said to make the model do so. Text is normalised first (compatibility forms, invisible
  characters, look-alike letters from other scripts, case, punctuation), then cut into runs of
  ``LEAK_SHINGLE`` words; once ``LEAK_BUDGET`` different runs of the system prompt have been
  said in the call (this reply and what the caller heard before), the reply is stopped. So a
  verbatim recital stops before ``LEAK_NGRAM`` words in a row, and one disguised by inserted
  words or spread over several turns stops after a few more.
- Bounds the reply's length.

Stateful per reply (a code block may span phrases); one guard per turn.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

LEAK_SHINGLE: Final = 4
LEAK_BUDGET: Final = 5
# The longest verbatim run of the system prompt that is never spoken: LEAK_BUDGET runs of
# LEAK_SHINGLE words span this many words.
LEAK_NGRAM: Final = LEAK_SHINGLE + LEAK_BUDGET - 1

# Letters of other scripts that look like Latin ones (Cyrillic, Greek, a few IPA), as a leak
# would use them to slip past a word match. NFKC already folds full-width and styled letters.
_LOOK_ALIKES: Final = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјорсхуѕԁһӏԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβειικνορτυχɑɡɩ",
    "ABESIJKMHOPCTXYaeijopcxysdhlqwABEZHIKMNOPTYXabeiikvoptuxagi",
)

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


def comparable_words(text: str) -> list[str]:
    """The words of ``text`` as a leak check compares them: NFKC, invisible characters and marks
    dropped, look-alike letters mapped to Latin, case folded, punctuation gone."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in folded if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    return _WORD.findall(kept.translate(_LOOK_ALIKES).casefold())


@lru_cache(maxsize=8)
def _prompt_shingles(system_prompt: str) -> frozenset[tuple[str, ...]]:
    words = comparable_words(system_prompt)
    return frozenset(tuple(words[i : i + LEAK_SHINGLE]) for i in range(len(words) - LEAK_SHINGLE + 1))


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
    _shingles: frozenset[tuple[str, ...]] = field(init=False)
    _in_code: bool = False
    _spoken_chars: int = 0
    _tail: list[str] = field(default_factory=list)
    _said: set[tuple[str, ...]] = field(default_factory=set)  # runs of the prompt said in the call

    def __post_init__(self) -> None:
        self._shingles = _prompt_shingles(self.system_prompt)

    def heard_before(self, replies: Iterable[str]) -> None:
        """What the caller heard from the agent earlier in the call: a leak spread over several
        turns is counted as one."""
        for reply in replies:
            words = comparable_words(reply)
            self._said.update(self._runs_in(words))

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
        words = self._tail + comparable_words(text)
        found = self._runs_in(words)
        self._tail = words[-(LEAK_SHINGLE - 1) :]
        if len(self._said | found) >= LEAK_BUDGET:
            return True
        self._said |= found
        return False

    def _runs_in(self, words: list[str]) -> set[tuple[str, ...]]:
        runs = (tuple(words[i : i + LEAK_SHINGLE]) for i in range(len(words) - LEAK_SHINGLE + 1))
        return {run for run in runs if run in self._shingles}
