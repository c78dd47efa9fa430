"""Tools every agent can enable: reach a person, end the call, switch language, send digits, expect
words (speech recognition hints; not offered unless ``AgentConfig.tools`` names it)."""

from __future__ import annotations

from typing import Annotated, Any

from voice_agent.core.key_entry import collect_keys
from voice_agent.core.tools import (
    EndSession,
    SendDigitsEffect,
    SetHints,
    SwitchLanguage,
    Tool,
    ToolContext,
    ToolResult,
    tool,
)
from voice_agent.errors import OutboundValidationError, ToolError
from voice_agent.protocol.checks import MAX_HINTS
from voice_agent.protocol.live_config import Hints
from voice_agent.protocol.outbound import SendDigits

HANDOFF_REASON_CODE = "live-agent-handoff"
MAX_REASON_CHARS = 300


def handoff_data(reason_code: str, reason: str, **extra: str) -> dict[str, str]:
    """The JSON ``handoffData`` the action handler reads (``reasonCode`` and ``reason`` always)."""
    return {"reasonCode": reason_code, "reason": reason.strip()[:MAX_REASON_CHARS], **extra}


@tool
def transfer_to_human(
    reason: Annotated[str, "One short sentence: why the caller needs a person"],
    ctx: ToolContext,
    summary: Annotated[str, "Two short sentences for the colleague: who is calling and what they need"] = "",
) -> ToolResult:
    """Transfer the caller to a human colleague. Use when the caller asks for a person, is upset,
    or needs something you cannot do."""
    extra = {"summary": summary.strip()[:MAX_REASON_CHARS]} if summary.strip() else {}
    data = handoff_data(HANDOFF_REASON_CODE, reason or "The caller asked for a person", **extra)
    return ToolResult(
        content="Transfer started. Say nothing more.",
        effects=(EndSession(line=ctx.agent.lines.handoff, handoff=data),),
    )


@tool
def end_call(ctx: ToolContext) -> ToolResult:
    """End the call after the caller said goodbye or has nothing else to ask."""
    return ToolResult(
        content="Call ending. Say nothing more.",
        effects=(EndSession(line=ctx.agent.lines.goodbye, farewell=True),),
    )


def _language_enum(schema: dict[str, Any], agent: Any) -> dict[str, Any]:
    codes = [o.code for o in agent.languages]
    schema["properties"]["language"]["enum"] = codes
    return schema


@tool(customize=_language_enum)
def switch_language(
    language: Annotated[str, "The language code to switch to"],
    ctx: ToolContext,
) -> ToolResult:
    """Switch the call's speech and transcription language when the caller prefers another
    language. Continue in the new language afterwards."""
    option = ctx.agent.language_option(language)
    if option is None:
        allowed = ", ".join(o.code for o in ctx.agent.languages)
        raise ToolError(f"language {language!r} is not available; available: {allowed}")
    return ToolResult(
        content=f"Switched to {option.code}. Continue the conversation in that language.",
        effects=(SwitchLanguage(code=option.code),),
    )


@tool(directions=("outbound",))
def send_digits(
    digits: Annotated[str, "Keys to press: 0-9, * and #; w waits half a second"],
) -> ToolResult:
    """Press keys on the phone's keypad, for example to choose an option in an automated phone
    menu on a call you placed."""
    try:
        SendDigits(digits)
    except OutboundValidationError as exc:
        raise ToolError(str(exc)) from exc
    return ToolResult(content=f"Sent the keys {digits}.", effects=(SendDigitsEffect(digits=digits),))


@tool
def expect_words(
    words: Annotated[list[str], "Names, codes or uncommon words the caller is about to say or spell"],
) -> ToolResult:
    """Tell speech recognition which words to expect next, before asking the caller to say or spell
    something unusual (a surname, an email, an order code)."""
    hints = tuple(w.strip() for w in words if w.strip() and "," not in w)[:MAX_HINTS]
    try:
        Hints(hints)
    except OutboundValidationError as exc:
        raise ToolError(str(exc)) from exc
    return ToolResult(content=f"Listening for {len(hints)} expected words.", effects=(SetHints(hints=hints),))


BUILTIN_TOOLS: tuple[Tool, ...] = (
    transfer_to_human,
    end_call,
    switch_language,
    send_digits,
    collect_keys,
    expect_words,
)
