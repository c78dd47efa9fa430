"""Handoff context: the person who takes a transfer learns why before they speak to the caller.

- A number: ``<Number url="/whisper?...">``. When the person answers, Twilio fetches the whisper
  URL and plays its TwiML to them alone (the caller keeps hearing the ringing), then bridges the
  call. The whisper says the agent's ``handoff.whisper_line`` with the reason and summary the
  model gave ``transfer_to_human``.
- A SIP target: the same reason and summary as ``X-Handoff-Reason`` / ``X-Handoff-Summary``
  headers on the INVITE (Twilio sends the ``<Sip>`` URI's ``X-`` query parameters as headers).

Both per agent (``AgentConfig.handoff``). The reason and summary travel in the whisper URL's query
(signed by Twilio when it fetches it, bounded here); they are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from voice_agent.agent.config import AgentConfig
from voice_agent.core.speech_plan import say_voice

MAX_REASON_CHARS: Final = 200
MAX_SUMMARY_CHARS: Final = 300
_SPOKEN_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f<>]")


def transfer(
    agent: AgentConfig,
    handoff: Mapping[str, str],
    *,
    dial_action_url: str,
    whisper_url: str,
    agent_name: str,
    language: str | None = None,
) -> str:
    """The transfer line (in the call's language), then ``<Dial>`` the agent's transfer target
    carrying the handoff context."""
    reason, summary = (
        _bounded(handoff.get("reason", ""), MAX_REASON_CHARS),
        _bounded(handoff.get("summary", ""), MAX_SUMMARY_CHARS),
    )
    response = VoiceResponse()
    voice = say_voice(agent, language)
    response.say(voice.lines.transfer_announcement, voice=voice.voice, language=voice.language)
    dial = Dial(action=dial_action_url, method="POST", timeout=agent.dial_timeout_s)
    target = agent.transfer_target
    if target.startswith(("sip:", "sips:")):
        dial.sip(_sip_with_headers(target, reason, summary) if agent.handoff.sip_headers else target)
    elif agent.handoff.whisper:
        query = urlencode({"agent": agent_name, "reason": reason, "summary": summary})
        dial.number(target, url=f"{whisper_url}?{query}", method="POST")
    else:
        dial.number(target)
    response.append(dial)
    return str(response.to_xml())


def whisper(agent: AgentConfig, query: Mapping[str, str]) -> str:
    """What the person who answers hears before the caller is bridged to them."""
    reason = _spoken(query.get("reason", ""), MAX_REASON_CHARS) or "not given"
    summary = _spoken(query.get("summary", ""), MAX_SUMMARY_CHARS)
    line = agent.handoff.whisper_line.format(agent=agent.name, reason=reason.rstrip("."), summary=summary)
    response = VoiceResponse()
    response.say(" ".join(line.split()))
    return str(response.to_xml())


def _sip_with_headers(target: str, reason: str, summary: str) -> str:
    headers = {"X-Handoff-Reason": reason, "X-Handoff-Summary": summary}
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in headers.items() if value)
    if not query:
        return target
    return f"{target}{'&' if '?' in target else '?'}{query}"


def _bounded(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def _spoken(text: str, limit: int) -> str:
    return _SPOKEN_UNSAFE.sub(" ", _bounded(text, limit)).strip()
