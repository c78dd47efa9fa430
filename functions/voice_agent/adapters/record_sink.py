"""Where a call record goes: stored once (S3 in AWS, a folder locally) and announced (EventBridge
in AWS, a JSON-lines file locally). Both stored forms are the same document."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.adapters.aws_clients import EventsClient, S3Client
from voice_agent.core.call_record import EVENT_DETAIL_TYPE, EVENT_SOURCE, KEY_PREFIX
from voice_agent.errors import RecordError
from voice_agent.log import logger

EVENTS_FILE: Final = "events.jsonl"
_PRECONDITION_FAILED: Final = {"PreconditionFailed", "412"}


def record_bytes(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")


def object_key(record: Mapping[str, Any]) -> str:
    """``calls/<YYYY-MM-DD of the call's start, UTC>/<CallSid>.json``: stable for a call (so a
    retry writes the same key), and a date prefix to list or query a day by."""
    started = str(record.get("startedAt") or record.get("recordedAt") or "")
    day = started[:10] if len(started) >= 10 else datetime.now(UTC).date().isoformat()
    return f"{KEY_PREFIX}/{day}/{record['callSid']}.json"


class S3RecordSink:
    """One object per call, written with ``If-None-Match: *``: the first attempt's copy stays."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, record: Mapping[str, Any]) -> tuple[dict[str, str], Mapping[str, Any]]:
        key = object_key(record)
        where = {"bucket": self._bucket, "key": key}
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=record_bytes(record),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _PRECONDITION_FAILED:
                logger.info("record already stored by an earlier attempt")
                return where, self._read(key)
            logger.warning("record not stored", extra={"error_code": code})
            raise RecordError(f"s3: {code}") from exc
        except BotoCoreError as exc:
            raise RecordError(f"s3: {type(exc).__name__}") from exc
        return where, record

    def _read(self, key: str) -> Mapping[str, Any]:
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            stored: dict[str, Any] = json.loads(body)
        except (ClientError, BotoCoreError, ValueError) as exc:
            raise RecordError(f"s3: stored record unreadable ({type(exc).__name__})") from exc
        return stored


class EventBridgeBus:
    """``Call Record Created`` events from ``voice-agent`` on the stack's bus."""

    def __init__(self, client: EventsClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def announce(self, detail: Mapping[str, Any]) -> None:
        entry = {
            "EventBusName": self._bus,
            "Source": EVENT_SOURCE,
            "DetailType": EVENT_DETAIL_TYPE,
            "Detail": json.dumps(detail, ensure_ascii=False),
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            logger.warning("record event not published", extra={"error_code": code})
            raise RecordError(f"events: {code}") from exc
        except BotoCoreError as exc:
            raise RecordError(f"events: {type(exc).__name__}") from exc
        # PutEvents answers 200 even when an entry failed: the entry says so.
        if response.get("FailedEntryCount", 0):
            failed = (response.get("Entries") or [{}])[0]
            code = str(failed.get("ErrorCode", "unknown"))
            logger.warning("record event refused", extra={"error_code": code})
            raise RecordError(f"events: {code}")


class FileRecordSink:
    """Locally: ``<dir>/<CallSid>.json``, written once (the first attempt's copy stays)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def put(self, record: Mapping[str, Any]) -> tuple[dict[str, str], Mapping[str, Any]]:
        path = self._dir / f"{record['callSid']}.json"
        where = {"path": str(path.resolve())}
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(record_bytes(record))
            try:
                os.link(tmp, path)  # fails if the record exists: written once, never half-written
            except FileExistsError:
                stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                return where, stored
            finally:
                tmp.unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            raise RecordError(f"file: {type(exc).__name__}") from exc
        return where, record


class FileEventBus:
    """Locally: each event as one line of ``<dir>/events.jsonl``, shaped as EventBridge delivers it."""

    def __init__(self, directory: Path) -> None:
        self._file = directory / EVENTS_FILE

    def announce(self, detail: Mapping[str, Any]) -> None:
        event = {
            "source": EVENT_SOURCE,
            "detail-type": EVENT_DETAIL_TYPE,
            "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "detail": detail,
        }
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with self._file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise RecordError(f"file: {type(exc).__name__}") from exc
