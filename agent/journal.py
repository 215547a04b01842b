"""The journal of transaction messages: the core's messages as rows of the store, and back.

Two parts:

* a JSON codec for :mod:`agent.core.messages` (:func:`encode`, :func:`decode`) that
  round-trips every outbound message exactly: datetimes as ISO 8601 with their offset, enums by
  value, tuples as arrays, nested dataclasses as objects. It is driven by the dataclasses'
  type hints, so a field added to a message is journaled without touching this module (a
  field with a default may be missing from an older row).
* :class:`Journal`, which keeps the ``transactions`` table in step with the messages it
  journals, in the same commit: TransactionStarted opens a transaction, TransactionUpdated
  updates its last meter value and message number, TransactionEnded closes it, and the CSMS's
  confirmations mark it. The core therefore needs to know nothing about the store.
"""

from __future__ import annotations

import enum
import json
import logging
import types
from dataclasses import MISSING, dataclass, fields, is_dataclass
from datetime import datetime
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from agent.core import messages as msg
from agent.store import JournalRow, Store, TransactionRow

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"

KEEP_TRANSACTIONS = 100
"""Finished transactions kept in the store (for inspection) before the oldest are pruned."""

KINDS: dict[str, type[msg.OutboundReq]] = {cls.__name__: cls for cls in get_args(msg.OutboundReq)}
"""Every outbound message by its kind, the neutral message's name (``TransactionStarted``).
Journals written before schema 2 named rows by the OCPP 1.6 action (``StartTransaction``);
the store's migration 2 renames them (agent/store.py)."""
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


class JournalError(ValueError):
    """A journal row cannot be turned back into a message (unknown kind, bad body)."""


# --- the codec --------------------------------------------------------------------------


def kind_of(req: msg.OutboundReq) -> str:
    """The message's name, as the ``kind`` column holds it."""
    return _KIND_OF[type(req)]


def encode(req: msg.OutboundReq) -> str:
    """The message as compact JSON (its kind is stored beside it, see :func:`kind_of`)."""
    return json.dumps(_to_json(req), separators=(",", ":"))


def decode(kind: str, body: str) -> msg.OutboundReq:
    """The message ``encode`` made; raises JournalError for an unknown kind or a bad body."""
    cls = KINDS.get(kind)
    if cls is None:
        raise JournalError(f"unknown message kind {kind!r}")
    try:
        req = _from_json(cls, json.loads(body))
    except (ValueError, TypeError, KeyError) as error:
        raise JournalError(f"{kind}: cannot decode {body[:80]!r}: {error}") from error
    assert isinstance(req, cls)
    return req


def _to_json(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    return value


def _from_json(hint: Any, raw: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _from_optional(hint, raw)
    if origin is tuple:
        return tuple(_from_json(get_args(hint)[0], item) for item in raw)
    if is_dataclass(hint):
        return _from_object(hint, raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if hint is float:
        return float(raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum | int | str):
        return hint(raw)
    raise TypeError(f"no JSON decoding for {hint!r}")


def _from_optional(hint: Any, raw: Any) -> Any:
    options = [arg for arg in get_args(hint) if arg is not type(None)]
    if raw is None and len(options) < len(get_args(hint)):
        return None
    if len(options) != 1:
        raise TypeError(f"no JSON decoding for {hint!r}")
    return _from_json(options[0], raw)


def _from_object(cls: Any, raw: dict[str, Any]) -> Any:
    hints = _hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in raw:
            values[f.name] = _from_json(hints[f.name], raw[f.name])
        elif f.default is MISSING and f.default_factory is MISSING:
            raise KeyError(f"{cls.__name__}.{f.name} missing")
    return cls(**values)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


# --- the journal ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A journaled message not yet confirmed by the CSMS."""

    seq: int
    ref: str
    req: msg.OutboundReq
    attempts: int = 0
    not_before: float = 0.0  # UTC epoch seconds; 0 means due now


@dataclass(frozen=True)
class Appended:
    """What :meth:`Journal.append` did: the new row's ``seq`` and the rows dropped for it."""

    seq: int
    dropped: tuple[JournalRow, ...] = ()


class Journal:
    """Transaction messages in the store, with the transactions they describe.

    Every method is one commit: a message and its effect on the transactions table are
    written together or not at all (StoreError).
    """

    DROPPABLE = "TransactionUpdated"  # the only kind the size cap may drop; never start/end

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(self, ref: str, req: msg.OutboundReq, limit: int | None = None,
               protect: int | None = None) -> Appended:
        """Journal ``req`` at the end; return its ``seq``.

        Size cap: when the journal holds ``limit`` rows or more, the oldest TransactionUpdated
        rows (not ``protect``, the one in flight) are dropped to make room. The start and the
        end of a transaction are never dropped, so the journal may exceed ``limit`` with them.
        """
        with self.store.write():
            dropped = self._make_room(limit, protect)
            seq = self.store.journal_append(ref, kind_of(req), _tx_ref(req), encode(req))
            self._track(req)
        return Appended(seq, dropped)

    def _make_room(self, limit: int | None, protect: int | None) -> tuple[JournalRow, ...]:
        if limit is None or self.store.journal_size < limit:
            return ()
        excess = self.store.journal_size - limit + 1
        dropped = tuple(self.store.journal_oldest(self.DROPPABLE, excess, protect))
        for row in dropped:
            self.store.journal_delete(row.seq)
        return dropped

    def _track(self, req: msg.OutboundReq) -> None:
        match req:
            case msg.TransactionStarted():
                self.store.tx_open(req.tx_ref, req.connector_id, req.id_tag, req.meter_start_wh,
                                   req.timestamp)
            case msg.TransactionUpdated(tx_ref=tx_ref, samples=samples, seq_no=seq_no):
                last = samples[-1] if samples else None
                self.store.tx_meter(tx_ref, energy_of(last) if last else None,
                                    last.timestamp if last else None, seq_no)
            case msg.TransactionEnded():
                self.store.tx_close(req.tx_ref, req.reason.value, req.meter_stop_wh,
                                    req.timestamp)

    def confirm(self, seq: int, req: msg.OutboundReq, conf: msg.InboundConf) -> None:
        """The CSMS confirmed ``req``: forget the row, note what the answer says (a confirmed
        StopTransaction also prunes finished transactions beyond :data:`KEEP_TRANSACTIONS`)."""
        with self.store.write():
            self.store.journal_delete(seq)
            if isinstance(req, msg.TransactionStarted) and isinstance(
                conf, msg.TransactionStartResult
            ) and conf.transaction_id is not None:
                self.store.tx_confirm_start(req.tx_ref, conf.transaction_id)
            elif isinstance(req, msg.TransactionEnded):
                self.store.tx_confirm_stop(req.tx_ref)
                self.store.prune_transactions(KEEP_TRANSACTIONS)

    def retry_later(self, seq: int, attempts: int, not_before: float) -> None:
        self.store.journal_retry(seq, attempts, not_before)

    def give_up(self, seq: int) -> None:
        """Forget a row that will not be delivered (attempts exhausted)."""
        self.store.journal_delete(seq)

    def pending(self) -> list[Entry]:
        """Every message not yet confirmed, in order. Rows that cannot be decoded are logged
        and left in the store for a person to look at."""
        return self._entries()

    def _entries(self) -> list[Entry]:
        entries = []
        for row in self.store.journal_rows():
            try:
                req = decode(row.kind, row.body)
            except JournalError as error:
                log.error("journal row %d (%s) skipped: %s", row.seq, row.ref, error)
                continue
            entries.append(Entry(row.seq, row.ref, req, row.attempts, row.not_before))
        return entries

    def transaction_ids(self) -> dict[int, int]:
        return self.store.transaction_ids()

    def open_transactions(self) -> list[TransactionRow]:
        return self.store.open_transactions()


def energy_of(sample: msg.MeterSample) -> float | None:
    """The energy register in a sample (Wh), if it has one."""
    for value in sample.values:
        if value.measurand == ENERGY and value.phase is None:
            return value.value
    return None


def _tx_ref(req: msg.OutboundReq) -> int | None:
    return req.tx_ref if isinstance(req, msg.TRANSACTION_MESSAGES) else None
