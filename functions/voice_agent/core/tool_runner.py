"""Running the tools a model called: each on the pool, under one deadline, with a filler line when
they are slow, and every failure turned into a result the model can read (never an exception)."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout

from voice_agent.core.budget import Clock
from voice_agent.core.model import ToolCall
from voice_agent.core.tools import ToolContext, ToolRegistry, ToolResult
from voice_agent.errors import ToolError
from voice_agent.log import error_summary, logger


class ToolRunner:
    def __init__(self, *, tools: ToolRegistry, clock: Clock, pool: Executor, filler_after_s: float) -> None:
        self._tools = tools
        self._clock = clock
        self._pool = pool
        self._filler_after_s = filler_after_s

    def run(
        self,
        calls: tuple[ToolCall, ...],
        ctx: ToolContext,
        offered: set[str],
        *,
        deadline: float,
        filler: Callable[[], None] | None,
    ) -> list[tuple[ToolCall, ToolResult]]:
        """Each call's result, in order. ``filler`` (say a short line) runs once if the tools are
        still working ``filler_after_s`` from now; a tool past ``deadline`` answers with an error."""
        futures: list[Future[ToolResult]] = [
            self._pool.submit(contextvars.copy_context().run, self._invoke, c, ctx, offered) for c in calls
        ]
        filler_at = None if filler is None else self._clock.monotonic() + self._filler_after_s
        results: list[tuple[ToolCall, ToolResult]] = []
        for call, future in zip(calls, futures, strict=True):
            while True:
                now = self._clock.monotonic()
                wake = deadline if filler_at is None else min(filler_at, deadline)
                try:
                    results.append((call, future.result(timeout=max(0.0, wake - now))))
                    break
                except FutureTimeout:
                    if filler is not None and filler_at is not None and self._clock.monotonic() < deadline:
                        filler_at = None
                        filler()
                        continue
                    logger.warning("tool timed out", extra={"tool": call.name})
                    results.append((call, tool_error("the tool took too long to answer")))
                    break
        return results

    def _invoke(self, call: ToolCall, ctx: ToolContext, offered: set[str]) -> ToolResult:
        try:
            if call.name not in offered:
                raise ToolError(f"unknown tool {call.name!r}")
            return self._tools.get(call.name).invoke(call.arguments, ctx)
        except ToolError as exc:
            name = call.name if call.name in offered else "(not offered)"  # the model chose the name
            logger.info("tool refused the call", extra={"tool": name, "error": error_summary(str(exc))})
            return tool_error(str(exc))
        except Exception as exc:
            logger.exception("tool failed", extra={"tool": call.name})
            return tool_error(f"the tool failed ({type(exc).__name__})")


def tool_error(message: str) -> ToolResult:
    return ToolResult(content=json.dumps({"error": message}))
