"""Delivery of the core's messages to the CSMS, one call at a time, persisted before sent.

Two lanes:

* the ordered lane keeps everything that describes what happened, in the order it happened:
  transaction messages (StartTransaction, MeterValues of a transaction, StopTransaction) and
  StatusNotifications. Transaction messages are delivered at least once: a CALLERROR or a
  timeout is retried after ``attempt x TransactionMessageRetryInterval`` up to
  ``TransactionMessageAttempts`` times; a lost link is not an attempt, the message waits. The
  CSMS's transactionId from StartTransaction.conf is substituted into the later messages of
  that transaction as they go out. Transaction messages wait for registration (the gate).
* the urgent lane (BootNotification, Authorize, Heartbeat, ...) jumps ahead, so a card is
  authorized promptly even while a long backlog of meter values is being replayed.

Durability (DESIGN.md): :meth:`Outbox.put` commits a transaction message to the journal
(:mod:`agent.journal`) before it returns, so nothing is handed to the link unjournaled; the
CSMS's confirmation deletes the row in one commit with what the answer says (the transactionId
of a StartTransaction). A new Outbox over the same store resumes the pending journal in order,
with the transactionIds already known: after a crash, every unconfirmed message is sent again.

The confirmation's commit is made once the next call has been written to the link
(:meth:`Outbox.flush_confirmed`, which the link calls after each frame it sends), so its fsync
overlaps the CSMS's turn instead of adding to each round trip of a backlog's replay. It is
made at once when nothing is to be sent, before any other write to the journal, before the
next confirmation is taken, and when the outbox stops. So, as before, at most one confirmed
message is in the journal at any moment: a crash or power cut can make the CSMS see that one
message again (delivery is at least once), never more, and never a message out of order.

Size cap and drop policy: the journal holds at most ``limit`` rows (:data:`JOURNAL_LIMIT`).
At the cap, each new message drops the oldest MeterValues row (never the one in flight); its
call fails with ``CallFailed("dropped")`` and a warning is logged. StartTransaction and
StopTransaction are never dropped: with only those left the journal grows past the cap.

Retries give up after TransactionMessageAttempts (OCPP 1.6 §4.10): the row is deleted and
``CallFailed`` reported. The later MeterValues and StopTransaction of a transaction whose
StartTransaction was given up cannot name a transactionId and are given up as well.

A store that fails (disk full, read-only) is logged and reported as
``DeviceFault(0, "InternalError")`` (cleared by the next write that succeeds); the message
stays in memory and is still delivered, but would not survive a restart. The other writers of
the store report their writes through :meth:`Outbox.store_written`, so whichever write fails
first raises the fault (a cache write at Authorize.conf comes before the StartTransaction).

Anything that is not a transaction message is sent only while the link is up; what cannot be
sent fails at once with ``CallFailed("offline")`` so the core can fall back (offline
authorization, re-boot) and re-report its current status after reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings
from agent.core.types import ErrorCode
from agent.csms.errors import CallRejected, LinkLost
from agent.journal import Journal
from agent.store import JournalRow, Store, StoreError

log = logging.getLogger(__name__)

Deliver = Callable[[str, msg.OutboundReq, "int | None"], Awaitable[msg.InboundConf]]

JOURNAL_LIMIT = 20_000
"""Rows the journal may hold before MeterValues are dropped: about 55 hours of one connector
charging offline at 10 s sampling, some 6 MB."""

LINK_LOST_PAUSE = 1.0  # seconds

_T = TypeVar("_T")


def _wall_clock() -> float:
    return datetime.now(UTC).timestamp()


@dataclass
class _Item:
    ref: str
    req: msg.OutboundReq
    attempts: int = 0
    not_before: float = 0.0  # on the outbox's (monotonic) clock
    seq: int | None = None  # the journal row; None: not journaled


class Outbox:
    """``deliver`` makes one call; ``report`` hands answers and failures back to the core;
    ``clock`` is monotonic seconds, ``wall`` UTC epoch seconds (retry times in the journal).

    The pending journal in ``store`` is taken up here, at construction: whatever must go out
    first (recovery's StopTransactions) is journaled before. Raises StoreError.
    """

    def __init__(self, deliver: Deliver, report: Callable[[ev.Event], None],
                 settings: Settings, clock: Callable[[], float], store: Store, *,
                 wall: Callable[[], float] = _wall_clock, limit: int = JOURNAL_LIMIT,
                 csms_transaction_ids: bool = True) -> None:
        self._deliver = deliver
        self._report = report
        self._settings = settings
        self._clock = clock
        self._wall = wall
        self._limit = limit
        self._csms_ids = csms_transaction_ids  # False: the charger's own ids (2.0.1)
        self._journal = Journal(store)
        self._ordered: deque[_Item] = deque()
        self._urgent: deque[_Item] = deque()
        self._tx_ids: dict[int, int] = {}
        self._in_flight: _Item | None = None
        self._unsaved: Callable[[], None] | None = None  # the last confirmation's commit
        self._store_failed = False
        self._link_up = False
        self._gate_open = False
        self._wakeup = asyncio.Event()
        self._resume()

    def _resume(self) -> None:
        """Take up the journal where the last run left it (raises StoreError)."""
        self._tx_ids.update(self._journal.transaction_ids())
        for entry in self._journal.pending():
            delay = max(0.0, entry.not_before - self._wall()) if entry.not_before else 0.0
            not_before = self._clock() + delay if delay else 0.0
            self._ordered.append(_Item(entry.ref, entry.req, entry.attempts, not_before,
                                       entry.seq))
        if self._ordered:
            log.info("journal: %d transaction messages to deliver from before the restart",
                     len(self._ordered))

    # --- what the runtime tells it ------------------------------------------------------

    def put(self, ref: str, req: msg.OutboundReq) -> None:
        """Queue ``req``; a transaction message is committed to the journal before this
        returns (persist before send)."""
        item = _Item(ref, req)
        if msg.is_transaction_message(req):
            self._journal_item(item)
            self._ordered.append(item)
        elif not self._link_up:
            self._fail(item, "offline")
            return
        elif isinstance(req, msg.StatusChanged):
            self._ordered.append(item)
        else:
            self._urgent.append(item)
        self._wakeup.set()

    def set_link(self, up: bool) -> None:
        self._link_up = up
        if not up:
            while self._urgent:
                self._fail(self._urgent.popleft(), "offline")
            for item in [i for i in self._ordered if not msg.is_transaction_message(i.req)]:
                self._ordered.remove(item)
                self._fail(item, "offline")
        self._wakeup.set()

    def set_gate(self, open_: bool) -> None:
        self._gate_open = open_
        self._wakeup.set()

    @property
    def backlog(self) -> int:
        """Transaction messages not yet confirmed by the CSMS."""
        return sum(1 for item in self._ordered if msg.is_transaction_message(item.req))

    def transaction_id(self, tx_ref: int) -> int | None:
        return self._tx_ids.get(tx_ref)

    # --- the journal --------------------------------------------------------------------

    def flush_confirmed(self) -> None:
        """Commit the last confirmation's journal write, if it is still to be made (see the
        module's Durability). Called after each frame the link sends; cheap when there is none."""
        write, self._unsaved = self._unsaved, None
        if write is not None:
            self._durably(write)

    def _journal_item(self, item: _Item) -> None:
        protect = self._in_flight.seq if self._in_flight is not None else None
        appended = self._journal_write(
            lambda: self._journal.append(item.ref, item.req, self._limit, protect)
        )
        if appended is None:
            return
        item.seq = appended.seq
        for row in appended.dropped:
            self._forget_dropped(row)

    def _forget_dropped(self, row: JournalRow) -> None:
        for queued in self._ordered:
            if queued.seq == row.seq:
                self._ordered.remove(queued)
                break
        log.warning("journal full (%d rows): dropped %s %s of transaction %s", self._limit,
                    row.kind, row.ref, row.tx_ref)
        self._report(ev.CallFailed(row.ref, "dropped", "journal size cap"))

    def _journal_write(self, write: Callable[[], _T]) -> _T | None:
        """Every write to the journal but the confirmation's own: that one first, so the
        journal's writes land in the order they were decided."""
        self.flush_confirmed()
        return self._durably(write)

    def _durably(self, write: Callable[[], _T]) -> _T | None:
        """Run a journal write; a StoreError becomes a logged fault, not a crash."""
        try:
            result = write()
        except StoreError as error:
            log.error("%s; the message is kept in memory only", error)
            self.store_written(error)
            return None
        self.store_written(None)
        return result

    @property
    def store_failed(self) -> bool:
        return self._store_failed

    def store_written(self, error: StoreError | None) -> None:
        """How a write to the store went (``error`` None: it succeeded). The first failure
        raises ``DeviceFault(0, "InternalError")``, the next success clears it."""
        if error is not None and not self._store_failed:
            self._store_failed = True
            self._report(ev.DeviceFault(0, ErrorCode.INTERNAL_ERROR.value, True,
                                        "state store cannot be written"))
        elif error is None and self._store_failed:
            self._store_failed = False
            log.info("state store writable again")
            self._report(ev.DeviceFault(0, ErrorCode.INTERNAL_ERROR.value, False))

    # --- the delivery loop --------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                item = self._next()
                if item is None:
                    self.flush_confirmed()
                    await self._sleep_until_due()
                    continue
                self._in_flight = item
                try:
                    await self._deliver_one(item)
                finally:
                    self._in_flight = None
        finally:
            self.flush_confirmed()

    async def _sleep_until_due(self) -> None:
        self._wakeup.clear()
        delay = self._next_retry_delay()
        try:
            await asyncio.wait_for(self._wakeup.wait(), delay)
        except TimeoutError:
            pass

    async def _wait_for_link(self) -> None:
        """After LinkLost, until the link reports its new state (at most a second): trying
        again at once would spin while the link winds down."""
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), LINK_LOST_PAUSE)
        except TimeoutError:
            pass

    def _next_retry_delay(self) -> float | None:
        if not (self._link_up and self._gate_open and self._ordered):
            return None
        return max(0.0, self._ordered[0].not_before - self._clock())

    def _next(self) -> _Item | None:
        """The urgent lane first; then the head of the ordered lane once it is due."""
        if not self._link_up:
            return None
        if self._urgent:
            return self._urgent.popleft()
        if not self._ordered:
            return None
        head = self._ordered[0]
        if msg.is_transaction_message(head.req) and not self._gate_open:
            return None
        return head if head.not_before <= self._clock() else None

    async def _deliver_one(self, item: _Item) -> None:
        transactional = msg.is_transaction_message(item.req)
        transaction_id = self._transaction_id_for(item.req)
        if (self._csms_ids and transactional and _needs_transaction_id(item.req)
                and transaction_id is None):
            self._give_up(item, "callerror", "its StartTransaction was never confirmed")
            return
        try:
            conf = await self._deliver(item.ref, item.req, transaction_id)
        except LinkLost:
            self.flush_confirmed()
            if not transactional:
                self._discard(item)
                self._fail(item, "offline")
            await self._wait_for_link()
            return  # a transaction message stays at the head, unattempted
        except (CallRejected, TimeoutError) as error:
            reason = "timeout" if isinstance(error, TimeoutError) else "callerror"
            self._on_error(item, transactional, reason, str(error))
            return
        self._on_confirmed(item, conf)

    def _on_confirmed(self, item: _Item, conf: msg.InboundConf) -> None:
        self.flush_confirmed()  # the one before, if no frame went out since
        self._discard(item)
        req = item.req
        if isinstance(req, msg.TransactionStarted) and isinstance(
            conf, msg.TransactionStartResult
        ) and conf.transaction_id is not None:
            self._tx_ids[req.tx_ref] = conf.transaction_id
        seq = item.seq
        if seq is not None:
            self._unsaved = lambda: self._journal.confirm(seq, req, conf)
        if isinstance(req, msg.TransactionEnded):
            self._tx_ids.pop(req.tx_ref, None)
        self._report(ev.CallAnswered(item.ref, conf))

    def _transaction_id_for(self, req: msg.OutboundReq) -> int | None:
        if isinstance(req, msg.TransactionUpdated | msg.TransactionEnded):
            return self._tx_ids.get(req.tx_ref)
        return None

    def _discard(self, item: _Item) -> None:
        if self._ordered and self._ordered[0] is item:
            self._ordered.popleft()

    def _on_error(self, item: _Item, transactional: bool, reason: str, detail: str) -> None:
        if not transactional:
            self._discard(item)
            self._fail(item, reason, detail)
            return
        item.attempts += 1
        limit = self._settings.int("TransactionMessageAttempts")
        if item.attempts >= limit:
            self._give_up(item, reason, f"after {item.attempts} attempts: {detail}")
            return
        delay = item.attempts * self._settings.int("TransactionMessageRetryInterval")
        item.not_before = self._clock() + delay
        seq, attempts, due = item.seq, item.attempts, self._wall() + delay
        if seq is not None:
            self._journal_write(lambda: self._journal.retry_later(seq, attempts, due))
        log.warning("%s failed (%s), attempt %d, retrying in %ss", type(item.req).__name__,
                    detail, item.attempts, delay)

    def _give_up(self, item: _Item, reason: str, detail: str) -> None:
        log.error("giving up %s %s: %s", type(item.req).__name__, item.ref, detail)
        self._discard(item)
        seq = item.seq
        if seq is not None:
            self._journal_write(lambda: self._journal.give_up(seq))
        self._fail(item, reason, detail)

    def _fail(self, item: _Item, reason: str, detail: str = "") -> None:
        self._report(ev.CallFailed(item.ref, reason, detail))


def _needs_transaction_id(req: msg.OutboundReq) -> bool:
    """Where the CSMS makes transaction ids (1.6), a transaction's updates and its end go out
    with that id only."""
    return isinstance(req, msg.TransactionUpdated | msg.TransactionEnded)
