"""Key entry: "please key in your account number" is one model turn, not one turn per key.

The model calls ``collect_keys`` (a built-in tool) with the line that asks for the keys and, if it
knows, how many. The turn says the line and ends; the connection item collects the keys
(``keyEntry``, ``keyDigits``): each ``dtmf`` frame is one conditional write that also takes a
generation, so a silence timer set before it stands down. The entry ends when

- the count is reached, or ``#`` is pressed (``#`` also ends a counted entry early), or
  ``max_keys`` keys came: the keys reach the model as the caller's next message, one turn;
- no key came for ``key_timeout_s``: the caller hears the re-prompt (``key_reprompts`` times),
  then the entry ends with what came (the timer function runs that one turn);
- the caller speaks instead: the prompt's turn clears the entry (``start_turn``), and the model
  hears the words.

The keys are never logged (only their count). The model sees them in the note; the stored caller
message carries ``shown`` too, so the call's transcript says how many keys came, not which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from voice_agent.agent.config import AgentConfig
from voice_agent.core.budget import Budget
from voice_agent.core.model import KeyState
from voice_agent.core.ports import KeyEntryStore
from voice_agent.core.silence import TimerScheduler
from voice_agent.core.tools import StartKeyEntry, ToolContext, ToolResult, tool
from voice_agent.errors import ToolError
from voice_agent.log import bind, logger

END_KEY: Final = "#"
STARTED: Final = (
    "Key entry started: the caller is keying in now. Their keys arrive as their next message. Say nothing more now."
)

# The turn a completed entry runs: (connection, note, shown, budget, call_sid) -> the turn's outcome.
RunTurn = Callable[[str, str, str, Budget, str], object]


@tool
def collect_keys(
    prompt: Annotated[
        str, "One short sentence that asks the caller to key it in, e.g. 'Please key in your account number.'"
    ],
    ctx: ToolContext,
    count: Annotated[
        int | None, "How many keys, if you know; leave it out to collect until the caller presses pound"
    ] = None,
) -> ToolResult:
    """Collect a number the caller keys in on the phone's keypad (an account number, a PIN, a date)
    as one answer, which arrives as their next message. Prefer it to asking them to say a long number."""
    timing = ctx.agent.timing
    if count is not None and not 1 <= count <= timing.max_keys:
        raise ToolError(f"count must be 1..{timing.max_keys}, or left out to collect until pound")
    line = prompt.strip() or timing.lines_for(ctx.language, ctx.agent.language).key_prompt
    return ToolResult(content=STARTED, effects=(StartKeyEntry(line=line[:300], count=count or 0),))


def finished(state: KeyState, max_keys: int) -> bool:
    keys = state.keys
    return bool(keys) and (keys[-1] == END_KEY or len(keys) >= (state.count or max_keys) or len(keys) >= max_keys)


def keyed(keys: tuple[str, ...]) -> str:
    """The keys as the answer: ``#`` ends an entry, it is not part of it."""
    return "".join(k for k in keys if k != END_KEY)


def finished_note(keys: tuple[str, ...]) -> tuple[str, str]:
    """(what the model reads, what the transcript shows)."""
    answer = keyed(keys)
    if not answer:
        return "(The caller pressed pound without keying anything in.)", "(pressed pound without any keys)"
    return f"(The caller keyed in: {answer})", f"(keyed in {len(answer)} keys)"


def unfinished_note(keys: tuple[str, ...]) -> tuple[str, str]:
    answer = keyed(keys)
    if not answer:
        return "(The caller did not key anything in.)", "(keyed nothing in)"
    return (
        f"(The caller stopped keying in after: {answer})",
        f"(stopped keying in after {len(answer)} keys)",
    )


class KeyEntry:
    """A ``dtmf`` frame on a connection that may be collecting keys (the relay asks first)."""

    def __init__(
        self, *, store: KeyEntryStore, agent: AgentConfig, run_turn: RunTurn, schedule: TimerScheduler | None
    ) -> None:
        self._store = store
        self._agent = agent
        self._run_turn = run_turn
        self._schedule = schedule

    def on_key(self, connection_id: str, key: str, budget: Budget) -> object | None:
        """``None``: the connection is not collecting keys (the key is an ordinary key press);
        otherwise the key was taken, and what it came to: the turn's outcome when it ended the
        entry, else ``True``."""
        max_keys = self._agent.timing.max_keys
        state = self._store.add_key(connection_id, key, max_keys)
        if state is None:
            return None
        bind(call_sid=state.call_sid)
        if not finished(state, max_keys):
            logger.info("key entry: key received", extra={"keys": len(keyed(state.keys))})
            if self._schedule is not None:
                self._schedule.key_pause(
                    state.call_sid,
                    connection_id,
                    state.generation,
                    entry=state.entry,
                    reprompts=state.reprompts,
                    language=state.language,
                    agent=state.agent,
                )
            return True
        keys = self._store.close_key_entry(connection_id, state.entry)
        if keys is None:
            return True  # a concurrent frame ended it
        note, shown = finished_note(keys)
        logger.info("key entry complete", extra={"keys": len(keyed(keys))})
        return self._run_turn(connection_id, note, shown, budget, state.call_sid)
