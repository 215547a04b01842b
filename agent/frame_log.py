"""The OCPP message log: every frame in and out, kept on disk, rotated by size, queryable.

:class:`FrameLog` is a :class:`logging.Handler` on the ``agent.ocpp`` logger. The ``ocpp``
library logs each frame there at INFO, exactly as ``"%s: send %s"`` and
``"%s: receive message %s"`` with the charge point id and the raw JSON text as arguments; the
handler turns those records into :class:`FrameRecord` values (direction, message type, unique
id, action, connectorId, idTag, transactionId, the payload with its secrets masked) and
ignores every other record. An answer (CALLRESULT/CALLERROR) carries no action on the wire: it
gets the action, connector and idTag of the CALL with the same unique id, so
``query(id_tag="04A1B2C3", action="Authorize")`` finds a card's Authorize *and* the answer with
its ``idTagInfo.status``. StopTransaction and MeterValues inherit the connector and idTag that
StartTransaction/its answer tied to their transactionId (within one run of the agent).
:meth:`FrameLog.record_event` adds a line of text (link up/down) between the frames.

Storage: :class:`FrameStore`, JSON Lines files ``ocpp-frames.jsonl`` (newest),
``ocpp-frames.jsonl.1`` … ``.{max_files-1}`` (oldest), rotated by size like logrotate. JSON
Lines and not SQLite, for the SD card and the installer: an append is one sequential write of
the new bytes, where SQLite would rewrite whole pages plus its journal or WAL and checkpoint
them (several times the bytes, on a card that wears per erase block); rotation bounds the disk
use without DELETE/VACUUM; a line torn by a power cut costs that line only (it is skipped on
reading); and the files stay readable with ``tail``/``jq`` when the agent cannot start. A query
scans at most ``max_bytes * max_files`` (8 MiB by default), well under a second on a Pi.

Writes are buffered: the logging call only appends to memory; a background thread writes what
gathered at most once per ``flush_interval`` (1 s) and on :meth:`FrameLog.close`, so the event
loop never waits for the card. There is no fsync: this is a diagnostic log, not the journal of
transactions (:mod:`agent.store` has that); a power cut may lose the last second. A charging
hour with eight measurands every 60 s adds about 85 KB per connector (a MeterValues record is
~1.2 KB, its answer ~0.2 KB), so the default 8 MiB keep about 100 charging hours, more with
fewer measurands or a longer sample interval. If the card stalls, at most
``max_buffer`` bytes wait in memory; frames beyond that are counted, dropped, and an event says
how many.

Secrets never reach the file: configuration values whose key names a secret
(``AuthorizationKey`` in ChangeConfiguration.req and GetConfiguration.conf, OCPP 2.0.1
``BasicAuthPassword``), any field named like a password, secret or private key, every
configured secret (the CSMS password) anywhere in a string, and HTTP Basic credentials.

Records come back in the order they were written, which is the order of events even when the
wall clock jumps (a Pi has no RTC: until NTP syncs, the clock may be hours behind).
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.logs import FRAMES_LOGGER, REDACTED, redact_text

__all__ = [
    "FILE_NAME",
    "FrameLog",
    "FrameParser",
    "FrameRecord",
    "FrameStore",
    "decision_record",
    "decision_text",
    "format_record",
    "redact_payload",
    "with_decisions",
]

log = logging.getLogger(__name__)

FILE_NAME = "ocpp-frames.jsonl"
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_FILES = 8
FLUSH_INTERVAL = 1.0
MAX_BUFFER_BYTES = 1 << 20
MAX_RECORD_BYTES = 32 << 10  # a larger payload (DataTransfer, a big local list) is not kept
MAX_TEXT = 2000

OUT, IN, EVENT = "out", "in", "event"  # directions; out = charger to CSMS
CALL, CALLRESULT, CALLERROR, UNPARSED = "CALL", "CALLRESULT", "CALLERROR", "UNPARSED"
_KINDS = {2: CALL, 3: CALLRESULT, 4: CALLERROR}
_FORMATS = {"%s: send %s": OUT, "%s: receive message %s": IN}  # ocpp/charge_point.py

# Field names whose value is secret, and configuration keys / variables that hold a secret.
_SECRET_NAME = re.compile(r"(?i)authorizationkey|password|passwd|passphrase|secret|private_?key")


# --- one record --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameRecord:
    """One frame (or event) as stored. ``direction``: ``out`` to the CSMS, ``in`` from it,
    ``event``. ``kind``: CALL, CALLRESULT, CALLERROR, UNPARSED (not OCPP-J; ``text`` holds
    it), EVENT (``text`` holds it). ``payload`` is the JSON payload with secrets masked; for a
    CALLERROR, ``{"errorCode", "errorDescription", "errorDetails"}``."""

    time: datetime
    direction: str
    kind: str
    unique_id: str | None = None
    action: str | None = None
    connector_id: int | None = None
    id_tag: str | None = None
    transaction_id: int | None = None
    payload: Any = None
    text: str | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {"time": _iso(self.time), "dir": self.direction, "kind": self.kind}
        for name, key in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                doc[key] = value
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> FrameRecord:
        """Raises ValueError, KeyError or TypeError for a line that is not a record."""
        doc = json.loads(line)
        fields = {name: doc.get(key) for name, key in _OPTIONAL_FIELDS}
        time = datetime.fromisoformat(doc["time"])
        return cls(time if time.tzinfo else time.replace(tzinfo=UTC),
                   str(doc["dir"]), str(doc["kind"]), **fields)


_OPTIONAL_FIELDS = (("unique_id", "id"), ("action", "action"), ("connector_id", "connectorId"),
                    ("id_tag", "idTag"), ("transaction_id", "transactionId"),
                    ("payload", "payload"), ("text", "text"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- redaction ---------------------------------------------------------------------------------


def redact_payload(value: Any, secrets: Sequence[str] = ()) -> Any:
    """A copy of the JSON value ``value`` with every secret replaced by ``***``."""
    if isinstance(value, dict):
        names_secret = _names_secret(value)
        return {
            key: REDACTED if item is not None and (_SECRET_NAME.search(key) or (
                names_secret and key in ("value", "attributeValue")))
            else redact_payload(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_payload(item, secrets) for item in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value


def _names_secret(entry: dict[str, Any]) -> bool:
    """``{"key": "AuthorizationKey", "value": …}`` (1.6) or
    ``{"variable": {"name": "BasicAuthPassword"}, "attributeValue": …}`` (2.0.1)."""
    name = entry.get("key")
    variable = entry.get("variable")
    if isinstance(variable, dict):
        name = variable.get("name")
    return isinstance(name, str) and bool(_SECRET_NAME.search(name))


# --- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    action: str | None = None
    connector_id: int | None = None
    id_tag: str | None = None
    transaction_id: int | None = None


class FrameParser:
    """Turns raw frames into records; remembers the calls in flight to name their answers.

    Not thread-safe: feed it frames in the order they passed the socket.
    """

    MAX_CALLS = 256  # answers never come for some calls (timeouts): keep the newest only
    MAX_TRANSACTIONS = 64

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._calls: OrderedDict[tuple[str, str], _Context] = OrderedDict()
        self._transactions: OrderedDict[int, _Context] = OrderedDict()

    def parse(self, direction: str, raw: str, time: datetime) -> FrameRecord:
        message = _ocpp_message(raw)
        if message is None:
            text = redact_text(raw, self._secrets)[:MAX_TEXT]
            return FrameRecord(time, direction, UNPARSED, text=text)
        kind, unique_id = _KINDS[message[0]], message[1]
        if kind == CALL:
            payload = message[3] if len(message) > 3 else None
            context = self._call(direction, unique_id, str(message[2]), payload)
        else:
            payload = message[2] if kind == CALLRESULT else _error_payload(message)
            context = self._answer(IN if direction == OUT else OUT, unique_id, payload)
        return FrameRecord(time, direction, kind, unique_id, context.action,
                           context.connector_id, context.id_tag, context.transaction_id,
                           redact_payload(payload, self._secrets))

    def _call(self, direction: str, unique_id: str, action: str, payload: Any) -> _Context:
        tx = _int_field(payload, "transactionId")
        known = self._transactions.get(tx, _Context()) if tx is not None else _Context()
        connector = _int_field(payload, "connectorId")
        context = _Context(action, known.connector_id if connector is None else connector,
                           _str_field(payload, "idTag") or known.id_tag, tx)
        _remember(self._calls, (direction, unique_id), context, self.MAX_CALLS)
        return context

    def _answer(self, call_direction: str, unique_id: str, payload: Any) -> _Context:
        call = self._calls.pop((call_direction, unique_id), _Context())
        tx = _int_field(payload, "transactionId")
        if tx is None:
            return call
        if call.action == "StartTransaction":
            _remember(self._transactions, tx, call, self.MAX_TRANSACTIONS)
        return replace(call, transaction_id=tx)


def _remember(table: OrderedDict[Any, _Context], key: Any, value: _Context, limit: int) -> None:
    table[key] = value
    while len(table) > limit:
        table.popitem(last=False)


def _ocpp_message(raw: str) -> list[Any] | None:
    """The decoded OCPP-J message array, or None when ``raw`` is not one."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not (isinstance(message, list) and len(message) >= 3 and type(message[0]) is int
            and message[0] in _KINDS and isinstance(message[1], str)):
        return None
    return message


def _error_payload(message: list[Any]) -> dict[str, Any]:
    names = ("errorCode", "errorDescription", "errorDetails")
    return {name: value for name, value in zip(names, message[2:], strict=False)}


def _int_field(payload: Any, name: str) -> int | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if type(value) is int else None


def _str_field(payload: Any, name: str) -> str | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


# --- storage -----------------------------------------------------------------------------------


class FrameStore:
    """The rotated JSON Lines files in ``directory``; see the module docstring.

    ``append`` is called from one thread at a time (:class:`FrameLog` serializes it); any
    number of readers may ``query`` meanwhile, in this or another process.
    """

    def __init__(self, directory: str | Path, *, name: str = FILE_NAME,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES) -> None:
        if max_bytes < 1 or max_files < 1:
            raise ValueError("max_bytes and max_files must be at least 1")
        self.directory = Path(directory)
        self.path = self.directory / name
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._tail_checked = False

    def _numbered(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def _rotated(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob(f"{self.path.name}.*"):
            suffix = path.name[len(self.path.name) + 1:]
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def files(self) -> list[Path]:
        """The existing files, oldest first."""
        older = [path for number, path in reversed(self._rotated()) if number < self.max_files]
        return older + ([self.path] if self.path.exists() else [])

    def append(self, lines: Sequence[str]) -> None:
        """Append one record per line, rotating first whenever a line would overflow the file."""
        if not lines:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        size = self.path.stat().st_size if self.path.exists() else 0
        chunk: list[bytes] = [] if self._tail_checked or not size else self._end_torn_line()
        for line in lines:
            data = line.encode("utf-8") + b"\n"
            if size and size + len(data) > self.max_bytes:
                self._write(chunk)
                self._rotate()
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        self._write(chunk)

    def _end_torn_line(self) -> list[bytes]:
        """A newline if the file ends mid-line (power cut), so the next line stays whole."""
        self._tail_checked = True
        with self.path.open("rb") as file:
            file.seek(-1, 2)
            return [] if file.read(1) == b"\n" else [b"\n"]

    def _write(self, chunk: list[bytes]) -> None:
        if chunk:
            with self.path.open("ab") as file:
                file.write(b"".join(chunk))

    def _rotate(self) -> None:
        keep = self.max_files - 1  # numbered files kept beside the current one
        for number, path in self._rotated():
            if number >= keep:
                path.unlink(missing_ok=True)
        for number in range(keep - 1, 0, -1):
            if self._numbered(number).exists():
                self._numbered(number).rename(self._numbered(number + 1))
        if keep:
            self.path.rename(self._numbered(1))
        else:
            self.path.unlink(missing_ok=True)

    def records(self) -> Iterator[FrameRecord]:
        """Every record, oldest first; damaged lines (a power cut mid-write) are skipped."""
        for path in self.files():
            try:
                file = path.open("rb")
            except FileNotFoundError:  # rotated away while we read
                continue
            with file:
                for line in file:
                    try:
                        yield FrameRecord.from_json(line.decode("utf-8"))
                    except (ValueError, KeyError, TypeError):
                        continue

    def query(self, since: datetime | None = None, until: datetime | None = None,
              connector_id: int | None = None, id_tag: str | None = None,
              action: str | Collection[str] | None = None,
              limit: int | None = None) -> list[FrameRecord]:
        """The matching records in the order written; with ``limit``, the newest ``limit``.

        ``since``/``until`` are inclusive and timezone-aware. ``id_tag`` and ``action`` compare
        without case; ``action`` may be several names. Events concern the whole charger: they
        match any ``connector_id`` and ``id_tag``, but no ``action``.
        """
        wanted = _Query(since, until, connector_id, id_tag, action)
        found: deque[FrameRecord] = deque(maxlen=limit)
        for record in self.records():
            if wanted.matches(record):
                found.append(record)
        return list(found)


class _Query:
    def __init__(self, since: datetime | None, until: datetime | None, connector_id: int | None,
                 id_tag: str | None, action: str | Collection[str] | None) -> None:
        self.since, self.until, self.connector_id = since, until, connector_id
        self.id_tag = id_tag.casefold() if id_tag is not None else None
        names = [action] if isinstance(action, str) else list(action or ())
        self.actions = {name.casefold() for name in names} or None

    def matches(self, record: FrameRecord) -> bool:
        if (self.since and record.time < self.since) or (self.until and record.time > self.until):
            return False
        if record.kind == EVENT:  # an event about another card is not shown for this one
            other = (self.id_tag is not None and record.id_tag is not None
                     and record.id_tag.casefold() != self.id_tag)
            return self.actions is None and not other
        if self.connector_id is not None and record.connector_id != self.connector_id:
            return False
        if self.id_tag is not None and (record.id_tag or "").casefold() != self.id_tag:
            return False
        return self.actions is None or (record.action or "").casefold() in self.actions


# --- the handler -------------------------------------------------------------------------------


class FrameLog(logging.Handler):
    """Records the frames the ``ocpp`` library logs; see the module docstring.

    ``attach()`` it to the ``agent.ocpp`` logger; ``close()`` writes what is buffered and
    detaches it (``logging.shutdown`` at exit does the same). ``record_event`` and the logging
    calls may come from any thread.
    """

    def __init__(self, store: FrameStore, *, secrets: Iterable[str] = (),
                 flush_interval: float = FLUSH_INTERVAL,
                 max_buffer: int = MAX_BUFFER_BYTES) -> None:
        super().__init__(logging.INFO)
        self.store = store
        self._secrets = tuple(s for s in secrets if s)
        self._parser = FrameParser(self._secrets)
        self._interval = flush_interval
        self._max_buffer = max_buffer
        self._buffer: list[str] = []
        self._buffered = 0
        self._dropped = 0
        self._failing = False
        self._closing = False
        self._pending = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._loggers: list[logging.Logger] = []
        self._writer = threading.Thread(target=self._write_loop, name="frame-log", daemon=True)
        self._writer.start()

    def attach(self, logger: str | logging.Logger = FRAMES_LOGGER) -> FrameLog:
        """Listen to ``logger``, lowering its level to INFO if needed (the frames are INFO)."""
        target = logging.getLogger(logger) if isinstance(logger, str) else logger
        if not target.isEnabledFor(logging.INFO):
            target.setLevel(logging.INFO)
        target.addHandler(self)
        self._loggers.append(target)
        return self

    def emit(self, record: logging.LogRecord) -> None:
        direction = _FORMATS.get(record.msg) if isinstance(record.msg, str) else None
        if direction is None or not isinstance(record.args, tuple) or len(record.args) != 2:
            return  # not a frame: the library's warnings and errors go to the console only
        try:
            raw = record.args[1]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            time = datetime.fromtimestamp(record.created, UTC)
            self._put(self._parser.parse(direction, text, time))
        except Exception:
            self.handleError(record)

    def record_event(self, text: str, connector_id: int | None = None,
                     id_tag: str | None = None) -> None:
        """Keep a line of text between the frames, e.g. ``"link down: connection lost"``;
        one about a card (an authorization decision) names its ``id_tag``."""
        self._put(FrameRecord(datetime.now(UTC), EVENT, EVENT, connector_id=connector_id,
                              id_tag=id_tag, text=redact_text(text, self._secrets)[:MAX_TEXT]))

    def query(self, since: datetime | None = None, until: datetime | None = None,
              connector_id: int | None = None, id_tag: str | None = None,
              action: str | Collection[str] | None = None,
              limit: int | None = None) -> list[FrameRecord]:
        """:meth:`FrameStore.query`, after writing what is buffered."""
        self.flush()
        return self.store.query(since, until, connector_id, id_tag, action, limit)

    def _put(self, record: FrameRecord) -> None:
        line = record.to_json()
        if len(line) > MAX_RECORD_BYTES:
            line = replace(record, payload=None,
                           text=f"payload of {len(line)} bytes not kept").to_json()
        with self._pending:
            if self._closing:
                return
            if self._buffered + len(line) > self._max_buffer:
                self._dropped += 1
                return
            self._buffer.append(line)
            self._buffered += len(line)
            self._pending.notify()

    def _write_loop(self) -> None:
        while True:
            with self._pending:
                while not self._buffer and not self._closing:
                    self._pending.wait()
                if self._closing:
                    return
            self._stop.wait(self._interval)  # let a second's frames gather: one write
            self.flush()

    def flush(self) -> None:
        """Write what is buffered now."""
        with self._write_lock:
            with self._pending:
                lines, self._buffer, self._buffered = self._buffer, [], 0
                dropped, self._dropped = self._dropped, 0
            if dropped:
                text = f"frame log: {dropped} frame(s) dropped, the disk was too slow"
                lines.append(FrameRecord(datetime.now(UTC), EVENT, EVENT, text=text).to_json())
            self._append(lines)

    def _append(self, lines: list[str]) -> None:
        try:
            self.store.append(lines)
        except OSError as error:
            if not self._failing:
                log.warning("frame log: cannot write %s: %s", self.store.path, error)
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        with self._pending:
            closing, self._closing = self._closing, True
            self._pending.notify_all()
        self._stop.set()
        if not closing and self._writer is not threading.current_thread():
            self._writer.join(timeout=5.0)
        self.flush()
        for logger in self._loggers:
            logger.removeHandler(self)
        self._loggers.clear()
        super().close()


# --- authorization decisions between the frames ------------------------------------------------


def decision_text(id_tag: str, purpose: str, connector_id: int, accepted: bool, source: str,
                  status: str | None, reason: str) -> str:
    """How one authorization decision reads between the frames."""
    return (f"authorization {id_tag} ({purpose}, connector {connector_id}): "
            f"{'accepted' if accepted else 'refused'}, source {source}, status "
            f"{status or '-'}, reason {reason}")


def decision_record(row: Mapping[str, Any]) -> FrameRecord:
    """An event record for one row of the store's authorization decisions
    (:meth:`agent.store.Store.authorization_rows`)."""
    time = datetime.fromisoformat(str(row["at"]))
    return FrameRecord(time if time.tzinfo else time.replace(tzinfo=UTC), EVENT, EVENT,
                       connector_id=int(row["connector_id"]), id_tag=str(row["id_tag"]),
                       text=decision_text(str(row["id_tag"]), str(row["purpose"]),
                                          int(row["connector_id"]), bool(row["accepted"]),
                                          str(row["source"]), row["status"],
                                          str(row["reason"])))


def with_decisions(frames: Iterable[FrameRecord], decisions: Iterable[FrameRecord],
                   limit: int | None = None) -> list[FrameRecord]:
    """The frames with the store's decisions in their place by time (the newest ``limit``).

    The store is the decisions' record: it is durable and outlives the message log's rotation.
    The message log's own copies (the events that name an idTag, :meth:`FrameLog.record_event`)
    are left out so that each decision shows once."""
    kept = [r for r in frames if not (r.kind == EVENT and r.id_tag is not None)]
    merged = list(heapq.merge(kept, decisions, key=lambda r: r.time))
    return merged[-limit:] if limit else merged


# --- reading -----------------------------------------------------------------------------------


def format_record(record: FrameRecord, *, utc: bool = False, full: bool = False,
                  ascii_only: bool = False) -> str:
    """One readable line: local time (or UTC), arrow, action, connector, compact payload.

    ``→`` charger to CSMS, ``←`` CSMS to charger, ``*`` an event. The payload is cut at 160
    characters unless ``full``.
    """
    moment = record.time.astimezone(UTC) if utc else record.time.astimezone()
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d}"
    stamp += "Z" if utc else ""
    arrows = {OUT: "->", IN: "<-"} if ascii_only else {OUT: "→", IN: "←"}
    arrow = arrows.get(record.direction, "*")
    if record.kind == EVENT:
        return f"{stamp} {arrow} {record.text or ''}"
    where = f"connector {record.connector_id}" if record.connector_id is not None else ""
    body = record.text if record.payload is None and record.text else json.dumps(
        record.payload, separators=(",", ":"), ensure_ascii=False)
    if not full and len(body) > 160:
        body = body[:159] + ("~" if ascii_only else "…")
    return f"{stamp} {arrow} {_label(record):<28} {where:<11} {body}".rstrip()


def _label(record: FrameRecord) -> str:
    action = record.action or "?"
    if record.kind == CALLRESULT:
        return f"{action}.conf"
    if record.kind == CALLERROR:
        return f"{action} CALLERROR"
    if record.kind == UNPARSED:
        return "(not an OCPP-J message)"
    return action
