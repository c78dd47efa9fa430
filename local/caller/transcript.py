"""The call as text: who said what, and per turn the time from the caller's input to the agent's
first text frame and to its last frame (``last: true`` or ``end``)."""

from __future__ import annotations

import statistics
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from local.caller.frames import Frame, ProtocolError
from local.caller.phone import CallResult, RelaySession, Reply

WIDTH = 100


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


@dataclass
class PrintedTranscript:
    """Scripted mode: one line per utterance, printed when the reply is complete."""

    out: Callable[[str], None] = print
    lines: list[str] = field(default_factory=list)

    def _emit(self, text: str) -> None:
        self.lines.append(text)
        self.out(text)

    def _speech(self, label: str, text: str, suffix: str = "") -> None:
        body = f"{label}: {text}{suffix}" if text else f"{label}: (nothing){suffix}"
        wrapped = textwrap.wrap(body, WIDTH, subsequent_indent=" " * 6) or [body]
        for line in wrapped:
            self._emit("  " + line)

    def note(self, text: str) -> None:
        self._emit(f"  -- {text}")

    def agent_line(self, label: str, text: str) -> None:
        self._speech(label, text)

    def caller_input(self, session: RelaySession, reply: Reply) -> None:
        self._speech("Caller", reply.caller)

    def frame(self, session: RelaySession, reply: Reply, frame: Frame) -> None:
        if frame.type == "play":
            self.note(f"agent plays {frame.data.get('source')}")
        elif frame.type == "sendDigits":
            self.note(f"agent presses {frame.data.get('digits')}")
        elif frame.type == "language":
            self.note(f"agent switches language: {frame.data}")
        elif frame.type == "end":
            self.note(f"agent sends end (handoffData {frame.data.get('handoffData')})")

    def reply_done(self, session: RelaySession, reply: Reply) -> None:
        if reply.interrupted:
            heard = f"{len(reply.heard or '')} characters heard"
            self._speech("Agent", reply.text.rstrip() + " --", f"   [caller barged in: {heard}]")
            return
        timing = f"   [first text {_ms(reply.first_text_ms)}, last frame {_ms(reply.last_ms)}]"
        if reply.kind == "unsolicited":
            timing = "   [unprompted]"
        self._speech("Agent", reply.text, timing)

    def protocol_error(self, session: RelaySession, error: ProtocolError) -> None:
        self.note(f"PROTOCOL ERROR (Twilio 64107): {error.reason}: {error.excerpt()}")


@dataclass
class StreamingTranscript(PrintedTranscript):
    """Interactive mode: the agent's tokens appear as they arrive."""

    write: Callable[[str], object] = sys.stdout.write
    flush: Callable[[], object] = sys.stdout.flush
    _open: bool = False

    def caller_input(self, session: RelaySession, reply: Reply) -> None:
        self._end_line()

    def frame(self, session: RelaySession, reply: Reply, frame: Frame) -> None:
        if frame.type == "text":
            if not self._open:
                self.write("  Agent: ")
                self._open = True
            self.write(frame.token)
            self.flush()
            return
        self._end_line()
        super().frame(session, reply, frame)

    def reply_done(self, session: RelaySession, reply: Reply) -> None:
        if not self._open:
            self.write("  Agent: ")
        if reply.interrupted:
            self.write(" --  [barged in]\n")
        else:
            self.write(f"   [first text {_ms(reply.first_text_ms)}, last frame {_ms(reply.last_ms)}]\n")
        self.flush()
        self._open = False

    def note(self, text: str) -> None:
        self._end_line()
        super().note(text)

    def agent_line(self, label: str, text: str) -> None:
        self._end_line()
        super().agent_line(label, text)

    def _end_line(self) -> None:
        if self._open:
            self.write("\n")
            self.flush()
            self._open = False


def latency_table(result: CallResult) -> list[str]:
    """Per turn: the caller's input, time to first text frame and to the last frame."""
    rows = [("#", "caller", "first text", "last frame", "frames")]
    firsts: list[float] = []
    for n, reply in enumerate(result.replies(), 1):
        caller = reply.caller if len(reply.caller) <= 48 else reply.caller[:45] + "..."
        marker = " (barge-in)" if reply.interrupted else " (end)" if reply.ended else ""
        last = "(superseded)" if reply.superseded else _ms(reply.last_ms) + marker
        rows.append((str(n), caller, _ms(reply.first_text_ms), last, str(len(reply.frames))))
        if reply.first_text_ms is not None:
            firsts.append(reply.first_text_ms)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    if firsts:
        lines.append(
            f"first text: median {statistics.median(firsts):.0f} ms, max {max(firsts):.0f} ms over {len(firsts)} turns"
        )
    return lines
