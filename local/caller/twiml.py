"""TwiML documents, parsed into the verbs the simulated caller follows.

Only what a ConversationRelay call uses: ``<Say>``, ``<Play>``, ``<Pause>``, ``<Connect>`` with
``<ConversationRelay>`` (its ``<Language>`` and ``<Parameter>`` children), ``<Dial>`` (a number,
``<Number>``, ``<Sip>`` or ``<Client>``), ``<Redirect>``, ``<Hangup/>`` and ``<Reject/>``. Any other
verb is kept as :class:`Unsupported` so the caller can report it instead of guessing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field


class TwiMLError(ValueError):
    """The webhook's answer is not a TwiML document the caller can follow."""


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Play:
    url: str


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class ConversationRelay:
    url: str
    attributes: Mapping[str, str]
    languages: tuple[Mapping[str, str], ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    # <Failover> per language code (its attributes), and where the TwiML put them: inside <Language>
    # ("language") or as <Failover language="..."> children of <ConversationRelay> ("relay").
    failovers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    failover_shapes: frozenset[str] = frozenset()

    def language(self, code: str) -> Mapping[str, str] | None:
        wanted = code.lower()
        return next((lang for lang in self.languages if lang.get("code", "").lower() == wanted), None)

    def listed(self, name: str) -> tuple[str, ...]:
        """A space-separated attribute (``debug``, ``events``) as its words."""
        return tuple(self.attributes.get(name, "").split())

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.attributes.get(name)
        return default if value is None else value.strip().lower() == "true"

    @property
    def welcome_greeting(self) -> str:
        return self.attributes.get("welcomeGreeting", "")

    @property
    def interruptible(self) -> str:
        """``any`` | ``speech`` | ``dtmf`` | ``none`` (legacy ``true``/``false`` mapped)."""
        raw = self.attributes.get("interruptible", "any").strip().lower()
        return {"true": "any", "false": "none"}.get(raw, raw)


@dataclass(frozen=True, slots=True)
class Connect:
    relay: ConversationRelay
    action: str | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Dial:
    target: str  # a number, a sip: URI or client:name
    kind: str  # "number" | "sip" | "client"
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "rejected"


@dataclass(frozen=True, slots=True)
class Unsupported:
    tag: str


Verb = Say | Play | Pause | Connect | Dial | Redirect | Hangup | Reject | Unsupported


def parse(document: str) -> list[Verb]:
    try:
        root = ET.fromstring(document)  # noqa: S314 (TwiML from this project's own webhook, on loopback)
    except ET.ParseError as exc:
        raise TwiMLError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwiMLError(f"the root element is <{root.tag}>, not <Response>")
    return [_verb(el) for el in root]


def _verb(el: ET.Element) -> Verb:
    text = (el.text or "").strip()
    match el.tag:
        case "Say":
            return Say(text=text, attributes=dict(el.attrib))
        case "Play":
            return Play(url=text)
        case "Pause":
            return Pause(seconds=float(el.attrib.get("length", "1")))
        case "Connect":
            return _connect(el)
        case "Dial":
            return _dial(el, text)
        case "Redirect":
            return Redirect(url=text, method=el.attrib.get("method", "POST").upper())
        case "Hangup":
            return Hangup()
        case "Reject":
            return Reject(reason=el.attrib.get("reason", "rejected"))
    return Unsupported(tag=el.tag)


def _connect(el: ET.Element) -> Connect:
    relays = [child for child in el if child.tag == "ConversationRelay"]
    if len(relays) != 1:
        raise TwiMLError("<Connect> must hold exactly one <ConversationRelay> for this caller")
    relay_el = relays[0]
    url = relay_el.attrib.get("url", "")
    if not url:
        raise TwiMLError("<ConversationRelay> has no url")
    languages = tuple(dict(c.attrib) for c in relay_el if c.tag == "Language")
    parameters = {c.attrib.get("name", ""): c.attrib.get("value", "") for c in relay_el if c.tag == "Parameter"}
    unknown = sorted({c.tag for c in relay_el} - {"Language", "Parameter", "Failover"})
    if unknown:
        raise TwiMLError(f"<ConversationRelay> has unexpected children: {', '.join(unknown)}")
    failovers, shapes = _failovers(relay_el)
    attributes = {k: v for k, v in relay_el.attrib.items() if k != "url"}
    relay = ConversationRelay(
        url=url,
        attributes=attributes,
        languages=languages,
        parameters=parameters,
        failovers=failovers,
        failover_shapes=frozenset(shapes),
    )
    return Connect(
        relay=relay,
        action=el.attrib.get("action") or None,
        method=el.attrib.get("method", "POST").upper(),
    )


def _failovers(relay_el: ET.Element) -> tuple[dict[str, dict[str, str]], set[str]]:
    """``<Failover>`` (2026-11-18) wherever the TwiML puts it: inside a ``<Language>``, or beside them
    naming its ``language`` (the element's exact shape is unverified; the caller reads both)."""
    found: dict[str, dict[str, str]] = {}
    shapes: set[str] = set()
    for child in relay_el:
        if child.tag == "Language":
            for failover in child.findall("Failover"):
                found[child.attrib.get("code", "")] = dict(failover.attrib)
                shapes.add("language")
        elif child.tag == "Failover":
            attrs = dict(child.attrib)
            found[attrs.pop("language", relay_el.attrib.get("language", ""))] = attrs
            shapes.add("relay")
    return found, shapes


def _dial(el: ET.Element, text: str) -> Dial:
    for child in el:
        target = (child.text or "").strip()
        if child.tag == "Number":
            return Dial(target=target, kind="number", attributes=dict(el.attrib))
        if child.tag == "Sip":
            return Dial(target=target, kind="sip", attributes=dict(el.attrib))
        if child.tag == "Client":
            return Dial(target=f"client:{target}", kind="client", attributes=dict(el.attrib))
    if not text:
        raise TwiMLError("<Dial> has no number, <Number>, <Sip> or <Client>")
    return Dial(target=text, kind="number", attributes=dict(el.attrib))


_TOKEN = re.compile(r"(callToken=)[^&]+")


def redacted(url: str) -> str:
    """A relay URL as transcripts and reports show it: the call's token left out (a per-call
    credential, like the upgrade's signature)."""
    return _TOKEN.sub(r"\1…", url)


def describe(verbs: list[Verb]) -> str:
    """A one-line summary for the transcript: ``<Say> <Dial +15555550100>``."""
    return " ".join(_summary(v) for v in verbs) or "<Response/> (empty)"


def _summary(verb: Verb) -> str:
    match verb:
        case Pause():
            return f"<Pause {verb.seconds:g}s>"
        case Connect():
            action = f" action={verb.action}" if verb.action else ""
            return f"<Connect{action}><ConversationRelay url={redacted(verb.relay.url)}>"
        case Dial():
            return f"<Dial {verb.target}>"
        case Redirect():
            return f"<Redirect {verb.url}>"
        case Hangup() | Reject():
            return f"<{type(verb).__name__}/>"
        case Unsupported():
            return f"<{verb.tag}> (not understood)"
    return f"<{type(verb).__name__}>"  # Say, Play
