"""Delivery of the core's messages to the CSMS, one call at a time.

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

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings
from agent.csms.errors import CallRejected, LinkLost

log = logging.getLogger(__name__)

Deliver = Callable[[str, msg.OutboundReq, "int | None"], Awaitable[msg.InboundConf]]


@dataclass
class _Item:
    ref: str
    req: msg.OutboundReq
    attempts: int = 0
    not_before: float = 0.0


class Outbox:
    def __init__(self, deliver: Deliver, report: Callable[[ev.Event], None],
                 settings: Settings, clock: Callable[[], float]) -> None:
        self._deliver = deliver
        self._report = report
        self._settings = settings
        self._clock = clock
        self._ordered: deque[_Item] = deque()
        self._urgent: deque[_Item] = deque()
        self._tx_ids: dict[int, int] = {}
        self._link_up = False
        self._gate_open = False
        self._wakeup = asyncio.Event()

    # --- what the runtime tells it ------------------------------------------------------

    def put(self, ref: str, req: msg.OutboundReq) -> None:
        item = _Item(ref, req)
        if msg.is_transaction_message(req):
            self._ordered.append(item)
        elif not self._link_up:
            self._fail(item, "offline")
            return
        elif isinstance(req, msg.StatusNotificationReq):
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

    # --- the delivery loop --------------------------------------------------------------

    async def run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                await self._sleep_until_due()
                continue
            await self._deliver_one(item)

    async def _sleep_until_due(self) -> None:
        self._wakeup.clear()
        delay = self._next_retry_delay()
        try:
            await asyncio.wait_for(self._wakeup.wait(), delay)
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
        try:
            conf = await self._deliver(item.ref, item.req, self._transaction_id_for(item.req))
        except LinkLost:
            if not transactional:
                self._discard(item)
                self._fail(item, "offline")
            return  # a transaction message stays at the head, unattempted
        except (CallRejected, TimeoutError) as error:
            reason = "timeout" if isinstance(error, TimeoutError) else "callerror"
            self._on_error(item, transactional, reason, str(error))
            return
        self._discard(item)
        if isinstance(item.req, msg.StartTransactionReq) and isinstance(
            conf, msg.StartTransactionConf
        ):
            self._tx_ids[item.req.tx_ref] = conf.transaction_id
        self._report(ev.CallAnswered(item.ref, conf))

    def _transaction_id_for(self, req: msg.OutboundReq) -> int | None:
        if isinstance(req, msg.MeterValuesReq | msg.StopTransactionReq) and req.tx_ref is not None:
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
            log.error("dropping %s after %d attempts: %s", type(item.req).__name__,
                      item.attempts, detail)
            self._discard(item)
            self._fail(item, reason, detail)
            return
        delay = item.attempts * self._settings.int("TransactionMessageRetryInterval")
        item.not_before = self._clock() + delay
        log.warning("%s failed (%s), attempt %d, retrying in %ss", type(item.req).__name__,
                    detail, item.attempts, delay)

    def _fail(self, item: _Item, reason: str, detail: str = "") -> None:
        self._report(ev.CallFailed(item.ref, reason, detail))
