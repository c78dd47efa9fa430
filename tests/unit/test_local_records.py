"""`make calls` and `make transcript`: what a person reads from the local call records."""

from __future__ import annotations

import io
import json
from pathlib import Path

from local.records import main

CALL = "CA" + "3" * 32
RECORD = {
    "version": 1,
    "callSid": CALL,
    "agent": "Ada",
    "direction": "inbound",
    "from": "+15555550123",
    "to": "+15555550199",
    "startedAt": "2026-12-02T10:00:00.000Z",
    "endedAt": "2026-12-02T10:01:23.000Z",
    "durationS": 83.0,
    "outcome": "transferred",
    "transcript": [
        {"speaker": "agent", "text": "Hi, this is Ada.", "at": "2026-12-02T10:00:00.900Z"},
        {"speaker": "caller", "text": "When are you open?", "at": "2026-12-02T10:00:03.200Z"},
        {"speaker": "agent", "text": "We're open from", "at": "2026-12-02T10:00:04.000Z"},
    ],
    "turns": [{"at": "2026-12-02T10:00:03.200Z", "timeToFirstPhraseMs": 352, "interrupted": True}],
    "toolCalls": [{"name": "transfer_to_human", "outcome": "ok"}],
    "reconnects": 0,
    "transfer": {"target": "+15555550100", "reasonCode": "live-agent-handoff", "dialResult": None},
    "summary": "The caller asked about the hours and was transferred.",
    "fields": None,
}


def run(directory: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--dir", str(directory), *args], out=out)
    return code, out.getvalue()


def test_the_listing_masks_numbers_and_says_how_each_call_ended(tmp_path: Path) -> None:
    (tmp_path / f"{CALL}.json").write_text(json.dumps(RECORD))
    (tmp_path / "events.jsonl").write_text("{}\n")  # not a record
    code, out = run(tmp_path, "list")
    assert code == 0
    (row,) = (line for line in out.splitlines() if CALL in line)
    assert "+*******0123" in row and "+15555550123" not in out
    assert "transferred" in row and "83.0 s" in row and " 1 " in row


def test_a_transcript_reads_as_the_call_went_with_each_wait(tmp_path: Path) -> None:
    (tmp_path / f"{CALL}.json").write_text(json.dumps(RECORD))
    code, out = run(tmp_path, "show", CALL[:10])
    assert code == 0
    assert "outcome: transferred (+15555550100, live-agent-handoff, dial no result yet)" in out
    assert "00:03.2  Caller  When are you open?   [first phrase 352 ms, cut off]" in out
    assert "00:04.0  Agent   We're open from" in out
    assert "Summary: The caller asked about the hours" in out
    assert "+*******0123" in out
    assert run(tmp_path, "show", "CA9")[0] == 1  # no such call


def test_an_empty_folder_says_how_to_make_a_record(tmp_path: Path) -> None:
    code, out = run(tmp_path, "list")
    assert code == 0 and "make demo" in out
