"""Read the call records ``make dev`` and ``make demo`` write (``LOCAL_CALL_RECORDS_DIR``, by
default ``.local/calls/``): the same documents the deployed stack puts in S3.

    python -m local.records list [--limit 20]     # make calls: newest first, numbers masked
    python -m local.records show [CALL]           # make transcript SID=CA...: one call, readable
                                                  # (a CallSid, a prefix of one, or the newest)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from local.stack import records_dir_from_env
from voice_agent.log import mask_phone


@dataclass(frozen=True)
class Found:
    path: Path
    record: Mapping[str, Any]


def load_all(directory: Path) -> list[Found]:
    """Every readable record in ``directory``, newest first (by start, then by file time)."""
    found: list[Found] = []
    for path in directory.glob("CA*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "callSid" in record:
            found.append(Found(path, record))
    found.sort(key=lambda f: (str(f.record.get("startedAt") or ""), f.path.stat().st_mtime), reverse=True)
    return found


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def _duration(record: Mapping[str, Any]) -> str:
    seconds = record.get("durationS")
    return "-" if not isinstance(seconds, int | float) else f"{seconds:.1f} s"


def listing(found: Sequence[Found]) -> list[str]:
    header = f"  {'when':<19}  {'caller':<14} {'agent':<8} {'outcome':<12} {'duration':>9} {'turns':>5}  CallSid"
    lines = [header]
    for f in found:
        r = f.record
        caller = r.get("from") if r.get("direction", "inbound") == "inbound" else r.get("to")
        lines.append(
            f"  {_when(r.get('startedAt')):<19}  {mask_phone(caller) or '-':<14} {r.get('agent', '-')!s:<8} "
            f"{r.get('outcome', '-')!s:<12} {_duration(r):>9} {len(r.get('turns') or ()):>5}  {r['callSid']}"
        )
    return lines


def _offset(stamp: str | None, start: datetime | None) -> str:
    if not stamp or start is None:
        return "     "
    try:
        seconds = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - start).total_seconds()
    except ValueError:
        return "     "
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def transcript(record: Mapping[str, Any], *, full_numbers: bool = False) -> list[str]:
    """One call as a person reads it: who, when, how it ended, then every line as the caller heard
    it, each caller turn with the time to the agent's first phrase."""

    def number(value: Any) -> str:
        text = str(value or "-")
        return text if full_numbers else str(mask_phone(text))

    started = record.get("startedAt")
    start = datetime.fromisoformat(started.replace("Z", "+00:00")) if started else None
    lines = [
        f"Call {record['callSid']}  {record.get('agent', '')}, {record.get('direction') or '-'}, "
        f"{number(record.get('from'))} -> {number(record.get('to'))}",
        f"{_when(started)}, {_duration(record)}, outcome: {record.get('outcome')}{_transfer(record)}",
    ]
    extras = [f"reconnects {record.get('reconnects', 0)}"]
    tools = record.get("toolCalls") or []
    if tools:
        extras.append("tools: " + ", ".join(f"{t.get('name')} ({t.get('outcome')})" for t in tools))
    lines += ["  ".join(extras), ""]
    waits = {t.get("at"): t for t in record.get("turns") or []}
    for line in record.get("transcript") or []:
        speaker = "Caller" if line.get("speaker") == "caller" else "Agent"
        note = ""
        turn = waits.get(line.get("at")) if speaker == "Caller" else None
        if turn is not None:
            waited = turn.get("timeToFirstPhraseMs")
            note = f"   [first phrase {waited} ms{', cut off' if turn.get('interrupted') else ''}]" if waited else ""
        lines.append(f"  {_offset(line.get('at'), start)}  {speaker:<6}  {line.get('text', '')}{note}")
    for label, key in (("Summary", "summary"), ("Fields", "fields")):
        value = record.get(key)
        if value:
            lines += ["", f"{label}: {value if isinstance(value, str) else json.dumps(value)}"]
    return lines


def _transfer(record: Mapping[str, Any]) -> str:
    transfer = record.get("transfer")
    if not isinstance(transfer, Mapping):
        return ""
    parts = [str(transfer.get("target")), str(transfer.get("reasonCode") or "-")]
    parts.append(f"dial {transfer.get('dialResult') or 'no result yet'}")
    return " (" + ", ".join(parts) + ")"


def pick(found: Sequence[Found], wanted: str | None) -> Found | None:
    if not found:
        return None
    if not wanted or wanted == "last":
        return found[0]
    matches = [f for f in found if str(f.record["callSid"]).startswith(wanted)]
    return matches[0] if len(matches) == 1 else None


def main(argv: list[str] | None = None, out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m local.records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="the records folder (LOCAL_CALL_RECORDS_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    listed = sub.add_parser("list", help="recent records, newest first")
    listed.add_argument("--limit", type=int, default=20)
    shown = sub.add_parser("show", help="one record as a readable transcript")
    shown.add_argument("call", nargs="?", default=None, help="a CallSid or its prefix (default: the newest)")
    shown.add_argument("--numbers", action="store_true", help="show phone numbers in full")
    args = parser.parse_args(argv)
    directory = args.dir or records_dir_from_env()
    found = load_all(directory)
    if not found:
        print(f"No call records in {directory} yet: run `make demo`, or `make dev` and a call.", file=out)
        return 0 if args.command == "list" else 1
    if args.command == "list":
        for line in listing(found[: max(1, args.limit)]):
            print(line, file=out)
        print(f"\n{len(found)} record(s) in {directory}; `make transcript SID=<CallSid>` shows one.", file=out)
        return 0
    chosen = pick(found, args.call)
    if chosen is None:
        print(f"No single record matches {args.call!r} in {directory}.", file=out)
        return 1
    for line in transcript(chosen.record, full_numbers=args.numbers):
        print(line, file=out)
    print(f"\n({chosen.path})", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
