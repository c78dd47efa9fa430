"""The offline demo model: a few keyword rules behind the OpenAI streaming wire protocol.

It is not a language model. It lets ``make demo`` and ``make dev`` run a believable call with no key
and no network, through the real ``openai`` client path (``openai_server.py`` speaks the protocol):
replies stream token by token with a realistic delay, and it uses the agent's tools the way a
model would, reading their results from the next request's ``tool`` messages.

What it understands (the latest user message, case-insensitive):

| the caller says                          | the model                                          |
|------------------------------------------|----------------------------------------------------|
| a person, human, agent, representative…  | calls ``transfer_to_human`` with a reason          |
| goodbye, bye, that's all                 | calls ``end_call``                                 |
| a number of three or more digits         | "Let me look that up." + ``lookup_order``          |
| (a ``lookup_order`` result arrives)      | answers from it                                    |
| "again" / "remind me" about an order     | repeats the last order status from the history     |
| hours, open, close                       | the opening hours                                  |
| where, address, directions, parking      | the address                                        |
| tell me about the store / what you sell  | a long answer (good for barge-in)                  |
| "(The caller pressed the N key …)"       | a key menu: 1 hours, 2 address                     |
| my account, account number               | calls ``collect_keys`` for six keys                |
| "(The caller keyed in: …)"               | confirms the account by its last two digits        |
| ignore your instructions / system prompt | declines                                           |
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from local.openai_server import Reply, ToolCallReply, split_tokens

# Typical hosted-model timing: ~300 ms to the first token, then 25-40 ms per token.
TIME_TO_FIRST_TOKEN_S: Final = 0.3
TOKEN_INTERVAL_S: Final = 0.03

HOURS: Final = (
    "We're open Monday to Saturday from eight in the morning until seven in the evening, "
    "and on Sunday from ten until four."
)
ADDRESS: Final = (
    "We're at one twenty three Main Street in Springfield, right next to the post office. "
    "There's free parking behind the store."
)
ABOUT: Final = (
    "Example Hardware has been part of Springfield for over thirty years. We carry tools, paint, "
    "garden supplies, and plumbing and electrical parts, and we can cut keys and mix paint while you "
    "wait. Our staff are happy to help with any project, big or small, and we deliver for free "
    "within town on orders over fifty dollars."
)
MENU: Final = "You can press one for our opening hours, two for our address, or zero to talk to a person."
HELP: Final = "I can help with our opening hours, our address, or the status of an order."
DECLINE: Final = "Sorry, I can't help with that. Is there anything about the store I can help with?"

_DTMF = re.compile(r"\(the caller pressed the (\S+) key", re.IGNORECASE)
_KEYED = re.compile(r"\(the caller keyed in: (\d+)\)", re.IGNORECASE)
_STOPPED_KEYING = re.compile(r"\(the caller (stopped keying in|did not key)", re.IGNORECASE)
_ACCOUNT = re.compile(r"\baccount\b", re.IGNORECASE)
ACCOUNT_PROMPT: Final = "Please key in your six-digit account number on your keypad."
_PERSON = re.compile(
    r"\b(person|human|agent|representative|someone|somebody|operator|colleague|manager|real people)\b", re.IGNORECASE
)
_GOODBYE = re.compile(r"\b(bye|goodbye|that's all|that is all|nothing else|hang up)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\b(\d{3,})\b")
_ORDER = re.compile(r"\b(order|package|delivery|parcel)\b", re.IGNORECASE)
_RECALL = re.compile(r"\b(again|remind|what was|repeat|where were we|before)\b", re.IGNORECASE)
_HOURS = re.compile(r"\b(hours|open|opening|close|closing|when)\b", re.IGNORECASE)
_WHERE = re.compile(r"\b(where|address|located|location|directions|parking)\b", re.IGNORECASE)
_ABOUT = re.compile(r"(tell me about|about the store|about you|what do you sell|what do you have|products)", re.I)
_INJECTION = re.compile(r"(ignore (all |your |the |previous )*instructions|system prompt|reveal your)", re.I)
_WHERE_WERE_WE = re.compile(r"\b(where|what) were we\b", re.IGNORECASE)
_HELLO = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_THANKS = re.compile(r"\b(thanks|thank you)\b", re.IGNORECASE)
_DIGIT_WORDS: Final = dict(enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")))


def spoken_number(digits: str) -> str:
    """``1001`` -> ``one zero zero one``: how an agent reads an order number on the phone."""
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits if d.isdigit())


def _offered(request: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in request.get("tools") or ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _tool_name(messages: Sequence[Mapping[str, Any]], call_id: str) -> str | None:
    for message in reversed(messages):
        for call in message.get("tool_calls") or ():
            if call.get("id") == call_id:
                return str(call.get("function", {}).get("name"))
    return None


def _last_order(messages: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    """The latest successful ``lookup_order`` result in the conversation so far."""
    for message in reversed(messages):
        if message.get("role") != "tool":
            continue
        if _tool_name(messages, str(message.get("tool_call_id"))) != "lookup_order":
            continue
        try:
            data = json.loads(_text(message))
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("found") == "yes":
            return {str(k): str(v) for k, v in data.items()}
    return None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def order_status(order: Mapping[str, str]) -> str:
    number, item = spoken_number(order.get("order_id", "")), order.get("item", "item")
    status, expected = order.get("status", ""), order.get("expected", "")
    if status == "shipped":
        return f"order {number}, your {item}, has shipped and should arrive {expected}."
    if status == "ready for pickup":
        return f"order {number}, your {item}, is ready for pickup at the front desk."
    if status == "processing":
        return f"order {number}, your {item}, is still being prepared and should ship {expected}."
    return f"order {number}, your {item}, is {status}."


def _after_tool(messages: Sequence[Mapping[str, Any]], last: Mapping[str, Any]) -> str:
    name = _tool_name(messages, str(last.get("tool_call_id")))
    try:
        data = json.loads(_text(last))
    except ValueError:
        data = {}
    if not isinstance(data, dict) or "error" in data:
        return "Sorry, I couldn't check that just now. Could you give me the order number again?"
    if name == "lookup_order":
        if data.get("found") == "yes":
            return "Thanks for waiting. " + _sentence(order_status({str(k): str(v) for k, v in data.items()}))
        number = spoken_number(str(data.get("order_id", "")))
        return f"I couldn't find an order with the number {number}. Could you check it and read it to me again?"
    return "Done. What else can I help you with?"


def _tool_reply(name: str, arguments: dict[str, Any], text: str = "") -> Reply:
    return Reply(tokens=split_tokens(text), tool_calls=[ToolCallReply(name=name, arguments=arguments)])


def demo_reply(request: Mapping[str, Any]) -> Reply:
    """The whole demo model: one request in, one reply (text and/or tool calls) out."""
    messages: list[Mapping[str, Any]] = [m for m in request.get("messages") or () if isinstance(m, Mapping)]
    if not messages:
        return _say(HELP)
    last = messages[-1]
    if last.get("role") == "tool":
        return _say(_after_tool(messages, last))
    said = _text(last)
    key = _DTMF.search(said)
    if key is not None:
        return _key(key.group(1))
    keyed = _KEYED.search(said)
    if keyed is not None:
        ending = spoken_number(keyed.group(1)[-2:])
        return _say(f"Thanks. The account ending in {ending} is in good standing. What else can I do for you?")
    if _STOPPED_KEYING.search(said):
        return _say("No problem, we can leave the account for now. What else can I help with?")
    return _tool_intent(said, _offered(request)) or _recall(said, messages) or _say(_answer(said))


def _say(text: str) -> Reply:
    return Reply(tokens=split_tokens(text))


def _key(digit: str) -> Reply:
    if digit == "1":
        return _say("You pressed one. " + HOURS)
    if digit == "2":
        return _say("You pressed two. " + ADDRESS)
    name = _DIGIT_WORDS.get(int(digit), digit) if digit.isdigit() else digit
    return _say(f"You pressed {name}. {MENU}")


def _tool_intent(said: str, tools: set[str]) -> Reply | None:
    if _INJECTION.search(said):
        return _say(DECLINE)
    if _PERSON.search(said) and "transfer_to_human" in tools:
        return _tool_reply("transfer_to_human", {"reason": "The caller asked to speak with a person."})
    if _GOODBYE.search(said) and "end_call" in tools:
        return _tool_reply("end_call", {})
    if _ACCOUNT.search(said) and "collect_keys" in tools:
        return _tool_reply("collect_keys", {"prompt": ACCOUNT_PROMPT, "count": 6})
    number = _NUMBER.search(said)
    if number is not None and "lookup_order" in tools:
        return _tool_reply("lookup_order", {"order_id": number.group(1)}, "Let me look that up.")
    return None


def _recall(said: str, messages: Sequence[Mapping[str, Any]]) -> Reply | None:
    if not _RECALL.search(said):
        return None
    order = _last_order(messages)
    if order is not None:
        return _say("Of course. " + _sentence(order_status(order)))
    if _ORDER.search(said):
        return _say("I don't have an order number from you yet. What is it?")
    if _WHERE_WERE_WE.search(said):
        return _say(f"No problem, let's pick up from here. {HELP}")
    return None


def _answer(said: str) -> str:
    rules: tuple[tuple[re.Pattern[str], str], ...] = (
        (_ORDER, "Sure, I can check an order for you. What's the order number?"),
        (_ABOUT, ABOUT),
        (_HOURS, HOURS),
        (_WHERE, ADDRESS),
        (_THANKS, "You're welcome! Is there anything else I can help with?"),
        (_HELLO, f"Hello! {HELP} What would you like to know?"),
    )
    for pattern, answer in rules:
        if pattern.search(said):
            return answer
    return f"Sorry, I can only help with questions about Example Hardware. {HELP}"


@dataclass
class DemoBrain:
    """``demo_reply`` as a brain for ``OpenAICompatibleServer``; keeps the latest requests."""

    history: int = 1000
    requests: deque[dict[str, Any]] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.history)

    def reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
        return demo_reply(request)

    def recorded(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)
