"""Plain renderings of what the dashboard reads: the session history as CSV, and a search
over the OCPP message log (:mod:`agent.frame_log`). No I/O here: the routes feed them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from agent.frame_log import FrameRecord, format_record

CSV_COLUMNS = ("sessionId", "sessionStatus", "evseId", "connectorId", "idTag", "mode",
               "createdAt", "startTime", "duration", "energyWh", "transactionId", "stopReason",
               "failure", "amount")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula (an id_tag given to the API
    as ``=HYPERLINK(...)``) gets a leading ``'``, as OWASP's "CSV Injection" page advises."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(view: dict[str, Any]) -> dict[str, str]:
    """The CSV columns of one session view (:func:`agent.api.server.session_view`)."""
    energy = view.get("energy")
    flat = {**view, "energyWh": energy["value"] if energy else None}
    return {name: _cell(flat.get(name)) for name in CSV_COLUMNS}


class CsvLines:
    """CSV text (RFC 4180, CRLF lines) of session views: ``header()`` once, then ``row(view)``
    per session, so a long history is written as it is read."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(self._buffer, CSV_COLUMNS, lineterminator="\r\n")

    def header(self) -> str:
        self._writer.writeheader()
        return self._take()

    def row(self, view: dict[str, Any]) -> str:
        self._writer.writerow(csv_row(view))
        return self._take()

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def csv_lines(views: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header, then one CSV line per session view."""
    lines = CsvLines()
    yield lines.header()
    for view in views:
        yield lines.row(view)


def frame_view(record: FrameRecord) -> dict[str, Any]:
    """One message-log record as JSON for the dashboard, with the line ``evse-agent log``
    prints for it."""
    return {"time": record.time.isoformat(), "direction": record.direction,
            "kind": record.kind, "action": record.action, "connectorId": record.connector_id,
            "idTag": record.id_tag, "transactionId": record.transaction_id,
            "payload": record.payload, "text": record.text,
            "line": format_record(record, utc=True, full=True)}


def search_frames(records: Iterable[FrameRecord], text: str | None, limit: int
                  ) -> list[dict[str, Any]]:
    """The newest ``limit`` records whose stored JSON contains ``text`` (without case),
    newest first. Secrets were masked before the records were stored."""
    needle = text.casefold() if text else None
    found = [record for record in records
             if needle is None or needle in record.to_json().casefold()]
    return [frame_view(record) for record in reversed(found[-limit:])]
