"""ConversationRelay's speech side, as the simulated caller plays it: which providers a session
speaks and listens with, what happens when one fails (``<Failover>``: once per kind per call, a
``configUpdated`` event; without a backup the session fails with its error code), the TwiML check
that fails a call with 64101, and the agent's speech played out at a speaking rate, with the
speaker events (``agentSpeaking`` on and off) the ``speaker-events`` debug option asks for.

Written from Twilio's documentation (``docs/protocol.md`` lists the sources and what is unverified),
not from the runtime: where Twilio documents nothing readable (the shape of ``configUpdated``, the
TTS failure's error code) this file says what it plays and the tests drive the runtime with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from local.caller.twiml import ConversationRelay

Kind = Literal["stt", "tts"]
ASR_ERROR: Final = ("64114", "ConversationRelay: ASR provider connection error")
# No readable source names the TTS provider's failure code: the caller says what failed in
# ErrorMessage and sends the code ``Outage.tts_error_code`` names (none by default).
TTS_ERROR_MESSAGE: Final = "ConversationRelay: TTS provider connection error"
INVALID_PARAMETER: Final = ("64101", "Invalid ConversationRelay parameter")
WORDS_PER_S: Final = 2.5

# The <ConversationRelay> attributes Twilio documents (its <ConversationRelay> page and twilio's TwiML
# definitions, 9.13); anything else in the TwiML fails the call with 64101 here.
DOCUMENTED_ATTRIBUTES: Final = frozenset(
    {
        "language",
        "ttsLanguage",
        "transcriptionLanguage",
        "ttsProvider",
        "voice",
        "transcriptionProvider",
        "speechModel",
        "profanityFilter",
        "dtmfDetection",
        "welcomeGreeting",
        "partialPrompts",
        "welcomeGreetingInterruptible",
        "interruptible",
        "preemptible",
        "hints",
        "intelligenceService",
        "reportInputDuringAgentSpeech",
        "elevenlabsTextNormalization",
        "interruptSensitivity",
        "debug",
        "backgroundNoiseReduction",
        "speechTimeout",
        "deepgramSmartFormat",
        "ignoreBackchannel",
        "events",
        "partialPromptOnHangup",
        "eagerEotThreshold",
        "asrSmartFormat",
        "ttsTextNormalization",
        "ttsLanguageTextNormalization",
        "elevenlabsLanguageTextNormalization",
        "includeInPrompt",
        "customerName",
        "applicationReconnect",
        "echoPromptFiltering",
        "turnDetection",
        "eotThreshold",
    }
)


@dataclass
class Outage:
    """What is broken at Twilio's side of this call (tests set it; a real call has none of it)."""

    down: set[str] = field(default_factory=set)  # provider names that fail ("Deepgram", "Google")
    unavailable_voices: set[str] = field(default_factory=set)  # a voice the account lacks: 64101
    # The <Failover> shapes this Twilio accepts (the element is unverified): another shape is 64101.
    failover_shapes: frozenset[str] = frozenset({"language", "relay"})
    tts_error_code: str | None = None


@dataclass
class Voice:
    """The providers a session speaks and listens with, for its current language."""

    tts_provider: str
    voice: str
    stt_provider: str
    speech_model: str

    def provider(self, kind: Kind) -> str:
        return self.stt_provider if kind == "stt" else self.tts_provider


def voice_for(relay: ConversationRelay, language: str, settings: Mapping[str, str] | None = None) -> Voice:
    """The language's ``<Language>`` (or settings a ``language`` message declared), else the
    ``<ConversationRelay>`` attributes."""
    chosen = settings or relay.language(language) or relay.attributes
    a = relay.attributes
    return Voice(
        tts_provider=chosen.get("ttsProvider", a.get("ttsProvider", "Google")),
        voice=chosen.get("voice", a.get("voice", "")),
        stt_provider=chosen.get("transcriptionProvider", a.get("transcriptionProvider", "Deepgram")),
        speech_model=chosen.get("speechModel", a.get("speechModel", "")),
    )


def twiml_problem(relay: ConversationRelay, outage: Outage) -> tuple[str, str] | None:
    """Why Twilio would refuse this ``<ConversationRelay>`` at setup (64101), if it would."""
    unknown = sorted(set(relay.attributes) - DOCUMENTED_ATTRIBUTES)
    if unknown:
        return INVALID_PARAMETER[0], f"{INVALID_PARAMETER[1]}: {', '.join(unknown)}"
    if relay.failover_shapes - outage.failover_shapes:
        return INVALID_PARAMETER[0], f"{INVALID_PARAMETER[1]}: <Failover>"
    voices = {relay.attributes.get("voice", ""), *(lang.get("voice", "") for lang in relay.languages)}
    if voices & outage.unavailable_voices:
        return INVALID_PARAMETER[0], f"{INVALID_PARAMETER[1]}: voice"
    return None


def failure_code(kind: Kind, outage: Outage) -> tuple[str | None, str]:
    return ASR_ERROR if kind == "stt" else (outage.tts_error_code, TTS_ERROR_MESSAGE)


def backup(relay: ConversationRelay, language: str, kind: Kind) -> dict[str, str] | None:
    """The ``<Failover>`` settings for one kind of provider in one language, if the TwiML has them."""
    failover = relay.failovers.get(language) or {}
    keys = ("transcriptionProvider", "speechModel") if kind == "stt" else ("ttsProvider", "voice")
    picked = {k: failover[k] for k in keys if failover.get(k)}
    return picked if len(picked) == len(keys) else None


def apply_backup(voice: Voice, kind: Kind, settings: Mapping[str, str]) -> Voice:
    if kind == "stt":
        return Voice(voice.tts_provider, voice.voice, settings["transcriptionProvider"], settings["speechModel"])
    return Voice(settings["ttsProvider"], settings["voice"], voice.stt_provider, voice.speech_model)


Send = Callable[[Mapping[str, object]], Awaitable[None]]


class Playback:
    """The agent's speech, played at ``words_per_s``; with ``events`` on, ``agentSpeaking`` on when it
    starts and off when the last word queued has played (or a barge-in cut it)."""

    def __init__(self, send: Send, *, words_per_s: float, events: bool) -> None:
        self._send = send
        self._rate = words_per_s
        self._events = events
        self.speaking = False
        self.ends_at = 0.0
        self.offs: list[float] = []  # when each "off" was sent (monotonic)
        self._task: asyncio.Task[None] | None = None

    async def play(self, text: str) -> None:
        words = len(text.split())
        if not words:
            return
        now = time.monotonic()
        self.ends_at = max(self.ends_at, now) + words / self._rate
        if not self.speaking:
            self.speaking = True
            await self._event("on")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._until_played(), name="playback")

    async def cut(self) -> None:
        """A barge-in: Twilio stops the audio."""
        self.ends_at = time.monotonic()
        if self.speaking:
            self.speaking = False
            await self._event("off")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _until_played(self) -> None:
        for _ in range(10_000):  # bounded: each pass sleeps until the queued speech has played
            left = self.ends_at - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(left)
        if self.speaking:
            self.speaking = False
            await self._event("off")

    async def _event(self, value: str) -> None:
        if value == "off":
            self.offs.append(time.monotonic())
        if self._events:
            with contextlib.suppress(Exception):
                await self._send({"type": "info", "name": "agentSpeaking", "value": value})


def config_updated(voice: Voice, language: str, reason: str) -> dict[str, object]:
    """The ``configUpdated`` event (its shape is not documented readably: an ``info`` message whose
    ``value`` names the session's providers, this caller's choice)."""
    return {
        "type": "info",
        "name": "configUpdated",
        "value": {
            "reason": reason,
            "language": language,
            "ttsProvider": voice.tts_provider,
            "voice": voice.voice,
            "transcriptionProvider": voice.stt_provider,
            "speechModel": voice.speech_model,
        },
    }


@dataclass
class CallSpeech:
    """What holds across a call's sessions: what is broken, which failovers Twilio already used (once
    per kind per call: "if the backup also fails, the call ends"), and how fast its voices speak."""

    outage: Outage = field(default_factory=Outage)
    failovers_used: set[str] = field(default_factory=set)
    words_per_s: float = WORDS_PER_S
    speaks: str | None = None  # the caller's language, reported in prompts of a "multi" session


Fail = Callable[[str | None, str], Awaitable[None]]
Note = Callable[[str], None]


class SessionSpeech:
    """One session's speech: its language and providers, their failover, hints and mid-call
    configuration as Twilio applies them, and the playback of the agent's words."""

    def __init__(self, relay: ConversationRelay, call: CallSpeech, send: Send, *, note: Note, fail: Fail) -> None:
        self.relay = relay
        self.call = call
        self._send = send
        self._note = note
        self._fail = fail
        self.language = relay.attributes.get("transcriptionLanguage") or relay.attributes.get("language") or "en-US"
        self.voice = voice_for(relay, self.language)
        self.declared: dict[str, Mapping[str, str]] = {}  # languages a ``language`` message declared
        self.undeclared_switches = 0  # switches to a language neither the TwiML nor the message declared
        self.hints: str | None = None
        self.config: dict[str, object] = {}
        self.config_updates = 0
        self.playback = Playback(send, words_per_s=call.words_per_s, events="speaker-events" in relay.listed("debug"))

    @property
    def prompt_lang(self) -> str:
        """``prompt.lang``: the transcription language; under ``multi``, the primary tag of what the
        caller speaks (Twilio's changelog of 2025-10-07)."""
        if self.language == "multi":
            return (self.call.speaks or "en-US").split("-")[0]
        return self.language

    @property
    def interruptible(self) -> str:
        mode = self.config.get("interruptible")
        return mode if isinstance(mode, str) else self.relay.interruptible

    async def check_providers(self) -> bool:
        """A provider in the outage: Twilio fails over to the language's backup (once per kind per
        call) and says so (``configUpdated``); with no backup left the session fails. False then."""
        for kind in ("stt", "tts"):
            if self.voice.provider(kind) in self.call.outage.down and not await self._fail_over(kind):
                code, message = failure_code(kind, self.call.outage)
                await self._fail(code, message)
                return False
        return True

    async def _fail_over(self, kind: Kind) -> bool:
        settings = backup(self.relay, self.language, kind)
        if settings is None or kind in self.call.failovers_used:
            return False
        switched = apply_backup(self.voice, kind, settings)
        if switched.provider(kind) in self.call.outage.down:
            return False
        self.call.failovers_used.add(kind)
        self.voice = switched
        self._note(f"{kind.upper()} provider failed over to {switched.provider(kind)} (<Failover>)")
        await self._updated(f"{kind}-failover")
        return True

    async def on_language(self, data: Mapping[str, object]) -> None:
        code = data.get("transcriptionLanguage") or data.get("ttsLanguage")
        if not isinstance(code, str):
            return
        for entry in data.get("languages") or ():  # type: ignore[attr-defined]
            if isinstance(entry, dict) and isinstance(entry.get("code"), str):
                self.declared[entry["code"].lower()] = entry
        settings = self.declared.get(code.lower())
        if settings is None and self.relay.language(code) is None and code != self.relay.attributes.get("language"):
            self.undeclared_switches += 1  # Twilio's default settings for the language (unverified)
        self.language = code
        self.voice = voice_for(self.relay, code, settings)
        await self._updated("language")

    async def on_config(self, data: Mapping[str, object]) -> None:
        self.config.update({k: v for k, v in data.items() if k not in ("type", "languages")})
        for entry in data.get("languages") or ():  # type: ignore[attr-defined]
            if isinstance(entry, dict) and isinstance(entry.get("code"), str):
                self.declared[entry["code"].lower()] = {**self.declared.get(entry["code"].lower(), {}), **entry}
        await self._updated("config")

    async def on_hints(self, data: Mapping[str, object]) -> None:
        self.hints = str(data.get("hints", ""))
        await self._updated("hints")

    async def _updated(self, reason: str) -> None:
        self.config_updates += 1
        if "config-updated" in self.relay.listed("events"):
            with contextlib.suppress(Exception):
                await self._send(config_updated(self.voice, self.language, reason))
