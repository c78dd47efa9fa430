"""The benchmark's model: deterministic replies of a requested length, and a history check.

Every benchmark prompt carries a tag, ``[bench <call> <turn> <tokens>]``: which call and turn it
is, and how many tokens the reply should have. The reply is a function of the tag alone, so the
client knows what it must receive and the brain knows what every earlier assistant message in a
request must say. Each request the brain answers is checked: the user messages are exactly this
call's turns 1..k in order, and each is followed by the reply it got (a greeting may come first).
Anything else (another call's words, a lost or duplicated turn) is recorded as a problem.

It is served by ``local.openai_server`` (the real OpenAI wire protocol, so the project's
``openai`` client path runs) and by ``local.bedrock_server`` (Bedrock's ConverseStream, so the
boto3 path runs), both with the benchmark's time to first token and token interval.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Final

from local.openai_server import Reply, split_tokens
from voice_agent.adapters.bedrock_messages import CALL_START_NOTE

# Speakable prose with clause and sentence boundaries where a model would put them.
PASSAGE: Final = (
    "Sure, I can help with that. We are open from nine in the morning until six in the evening on "
    "weekdays, and from ten until four on Saturdays. On Sundays the store is closed, but you can "
    "still order online and pick everything up on Monday morning. If you need something delivered, "
    "we deliver for free within town on orders over fifty dollars, usually the next day. Our staff "
    "can cut keys, mix paint and help you plan a project while you wait; just ask at the counter. "
    "Parking is free behind the building, and the entrance on the side street has a ramp. "
)
_PASSAGE_TOKENS: Final = split_tokens(PASSAGE.strip())
_QUESTIONS: Final = (
    "When are you open on Saturday?",
    "Do you deliver to my street?",
    "Can you cut a key for me today?",
    "Where do I park when I come by?",
    "Can I pick up an online order on Sunday?",
)
_TAG: Final = re.compile(r"^\[bench (\S+) (\d+) (\d+)\]")


def prompt(call: str, turn: int, tokens: int) -> str:
    """What the benchmark caller says on ``turn`` of ``call``, asking for a ``tokens``-token reply."""
    return f"[bench {call} {turn} {tokens}] {_QUESTIONS[(turn - 1) % len(_QUESTIONS)]}"


def reply_tokens(call: str, turn: int, tokens: int) -> list[str]:
    """The reply to that prompt, as streamed tokens (words with their leading space)."""
    head = split_tokens(f"Call {call}, answer {turn}.")
    out = head[:tokens]
    i = 0
    while len(out) < tokens:
        token = _PASSAGE_TOKENS[i % len(_PASSAGE_TOKENS)]
        out.append(" " + token.lstrip())
        i += 1
    if not out[-1].rstrip().endswith((".", "?", "!")):
        out[-1] = out[-1].rstrip(",;:") + "."
    return out


def reply_text(call: str, turn: int, tokens: int) -> str:
    return "".join(reply_tokens(call, turn, tokens))


def parse_tag(text: str) -> tuple[str, int, int] | None:
    match = _TAG.match(text)
    return None if match is None else (match.group(1), int(match.group(2)), int(match.group(3)))


@dataclass
class BenchBrain:
    """Answers benchmark prompts and checks the history of every request it answers."""

    requests: dict[str, int] = field(default_factory=dict)  # requests answered per call
    problems: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, request: dict[str, Any]) -> Reply:
        messages = [m for m in request.get("messages", []) if m.get("role") != "system"]
        users = [m for m in messages if m.get("role") == "user"]
        tag = parse_tag(str(users[-1].get("content", ""))) if users else None
        if tag is None:
            return Reply(tokens=split_tokens("Okay."))
        call, turn, tokens = tag
        problem = check_history(messages, call, turn)
        with self._lock:
            self.requests[call] = self.requests.get(call, 0) + 1
            if problem:
                self.problems.append(f"call {call} turn {turn}: {problem}")
        return Reply(tokens=reply_tokens(call, turn, tokens))


def check_history(messages: list[dict[str, Any]], call: str, turn: int) -> str | None:
    """``None`` if ``messages`` (no system message) hold exactly ``call``'s turns 1..``turn``."""
    rest = list(messages)
    if rest and rest[0].get("role") == "user" and rest[0].get("content") == CALL_START_NOTE:
        rest = rest[1:]  # Bedrock's request opens with a note before the greeting
    if rest and rest[0].get("role") == "assistant":
        rest = rest[1:]  # the greeting Twilio spoke
    expected_roles = ["user", "assistant"] * (turn - 1) + ["user"]
    roles = [str(m.get("role")) for m in rest]
    if roles != expected_roles:
        return f"roles {roles} != {expected_roles}"
    for j in range(1, turn + 1):
        tag = parse_tag(str(rest[2 * (j - 1)].get("content", "")))
        if tag is None or tag[0] != call or tag[1] != j:
            return f"user message {j} is {tag}, expected call {call} turn {j}"
        if j < turn:
            said = str(rest[2 * j - 1].get("content") or "")
            if said != reply_text(call, j, tag[2]):
                return f"assistant message {j} differs from the reply that turn got"
    return None
