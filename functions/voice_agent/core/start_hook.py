"""The start-of-call hook: one typed function a fork writes (``agent/hooks.py``), run once per call
while the greeting plays, with a time limit; what it returns joins the call context.

Where it runs: at the end of the ``setup`` frame's own invocation, after the socket is bound, the
greeting stored and the timers set. Every frame is its own invocation, so the first ``prompt``
never waits for it: a turn that starts before the result is stored runs without it, and the turns
after it have it (``start_turn`` reads it from the connection item, in the request it makes
anyway).

Once per call: a conditional write on the call item claims the hook; a second socket of the call
(a reconnect), a replayed setup or a concurrent one finds it claimed and runs nothing. A hook that
raises or outlives its time limit leaves the call as it was (logged with the exception's type,
never its message or the values); one that returns late is ignored.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Final, Protocol

from voice_agent.core.call_context import CallContext
from voice_agent.core.routing import AGENT_PARAMETER, Agents
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER

# What a hook may return: a flat mapping of plain names to short scalar values (strings, numbers,
# booleans), bounded so the connection item every turn reads stays small.
StartHook = Callable[[CallContext], Mapping[str, object] | None]
MAX_HOOK_VALUES: Final = 16
MAX_HOOK_VALUE_CHARS: Final = 200
_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


class HookStore(Protocol):
    def claim_start_hook(self, call_sid: str) -> bool:
        """True for exactly one caller per call (a conditional write)."""
        ...

    def save_hook_result(self, call_sid: str, values: Mapping[str, str]) -> None:
        """The result on the call item and on the call's current connection item."""
        ...


@dataclass(frozen=True, slots=True)
class HookRun:
    """What happened (for logs, metrics and tests)."""

    status: str  # "done", "empty", "skipped" (claimed before), "timeout", "failed", "store_error"
    values: Mapping[str, str] | None = None
    duration_s: float = 0.0


class StartHookRunner:
    def __init__(self, *, store: HookStore, pool: Executor, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._pool = pool
        self._clock = clock

    def run(self, hook: StartHook, context: CallContext, timeout_s: float) -> HookRun:
        started = self._clock()
        try:
            if not self._store.claim_start_hook(context.call_sid):
                return HookRun("skipped")
        except StoreUnavailableError:
            logger.warning("start-of-call hook not claimed (store unavailable); not run")
            return HookRun("store_error")
        future = self._pool.submit(contextvars.copy_context().run, hook, context)
        try:
            raw = future.result(timeout=timeout_s)
        except FutureTimeout:
            future.cancel()
            logger.warning("start-of-call hook timed out; going on without it", extra={"timeout_s": timeout_s})
            return HookRun("timeout", duration_s=self._clock() - started)
        except Exception as exc:  # a fork's code: whatever it raises, the call goes on
            logger.warning(
                "start-of-call hook failed; the call goes on without it", extra={"error": type(exc).__name__}
            )
            return HookRun("failed", duration_s=self._clock() - started)
        values = hook_values(raw)
        if not values:
            return HookRun("empty", values, self._clock() - started)
        try:
            self._store.save_hook_result(context.call_sid, values)
        except StoreUnavailableError:
            logger.warning("start-of-call hook result not stored")
            return HookRun("store_error", values, self._clock() - started)
        elapsed = self._clock() - started
        logger.info("start-of-call hook done", extra={"names": sorted(values), "duration_ms": round(elapsed * 1000, 1)})
        return HookRun("done", values, elapsed)


def hook_values(raw: object) -> dict[str, str]:
    """The part of a hook's result that fits: plain names, scalar values, bounded; what does not fit
    is left out and logged by name only."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        logger.warning("start-of-call hook returned something other than a mapping; ignored")
        return {}
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in raw.items():
        text = _scalar(value)
        if (
            len(kept) >= MAX_HOOK_VALUES
            or not isinstance(name, str)
            or not _NAME.match(name)
            or text is None
            or len(text) > MAX_HOOK_VALUE_CHARS
        ):
            dropped.append(str(name)[:32])
            continue
        kept[name] = text
    if dropped:
        logger.warning("start-of-call hook values left out", extra={"names": dropped})
    return kept


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    return None


class StartOfCall:
    """What ``setup`` asks for once the socket is bound: the answering agent's hook, if it has one."""

    def __init__(self, *, agents: Agents, hooks: Mapping[str, StartHook], runner: StartHookRunner) -> None:
        self._agents = agents
        self._hooks = hooks
        self._runner = runner

    def after_setup(self, setup: Setup) -> HookRun | None:
        name = self._agents.name_of(setup.custom_parameters.get(AGENT_PARAMETER))
        policy = self._agents.get(name).context
        hook = self._hooks.get(policy.start_hook) if policy.start_hook else None
        if hook is None:
            return None
        return self._runner.run(hook, setup_context(setup, name), policy.start_hook_timeout_s)


def setup_context(setup: Setup, agent: str) -> CallContext:
    hidden = {CALL_TOKEN_PARAMETER, AGENT_PARAMETER}
    return CallContext(
        call_sid=setup.call_sid,
        agent=agent,
        caller=setup.from_number,
        called=setup.to_number,
        direction=setup.direction,
        parameters={k: v for k, v in setup.custom_parameters.items() if k not in hidden},
    )
