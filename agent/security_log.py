"""The local security log: every security event, readable with ``evse-agent log --security``.

One JSON object per line in ``<state_dir>/security-log.jsonl`` (mode 0600), rotated at
:data:`MAX_BYTES` into ``security-log.jsonl.1`` (one old file kept). Each line has ``time``
(UTC, ISO 8601), ``type`` (the SecurityEventNotification type), ``critical`` and ``info``
(the techInfo, at most 255 characters). Nothing secret is written: the callers pass event
types and descriptions, never credentials, and ``info`` goes through the log redaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from agent.logs import redact_text

FILE_NAME = "security-log.jsonl"
MAX_BYTES = 256 << 10
TECH_INFO_MAX = 255  # SecurityEventNotification.techInfo is CiString255


@dataclass(frozen=True)
class SecurityRecord:
    time: str
    type: str
    critical: bool
    info: str | None = None

    def line(self) -> str:
        when = self.time.replace("+00:00", "Z")
        flag = " (critical)" if self.critical else ""
        return f"{when}  {self.type}{flag}" + (f"  {self.info}" if self.info else "")


class SecurityLog:
    def __init__(self, directory: Path, secrets: Iterable[str] = ()) -> None:
        self.path = directory / FILE_NAME
        self._secrets = tuple(secrets)

    def append(self, moment: datetime, kind: str, critical: bool,
               info: str | None) -> SecurityRecord:
        """Keep one event (raises OSError when the log cannot be written)."""
        text = redact_text(info, self._secrets)[:TECH_INFO_MAX] if info else None
        record = SecurityRecord(moment.isoformat(timespec="seconds"), kind, critical, text)
        self._rotate_if_full()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps(asdict(record)) + "\n").encode())
        finally:
            os.close(fd)
        return record

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size >= MAX_BYTES:
                os.replace(self.path, self.path.with_name(FILE_NAME + ".1"))
        except FileNotFoundError:
            pass

    def records(self) -> Iterator[SecurityRecord]:
        """Oldest first; torn or foreign lines are skipped."""
        for path in (self.path.with_name(FILE_NAME + ".1"), self.path):
            if not path.exists():
                continue
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    yield SecurityRecord(**json.loads(raw))
                except (ValueError, TypeError):
                    continue
