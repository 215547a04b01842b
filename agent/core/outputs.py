"""What the core commands the hardware: the contactor, the offered current and the lock.

The one place the contactor is decided: after every event :meth:`Outputs.reconcile` derives
each connector's contactor command from :func:`agent.core.connector.contactor_wanted` (plus
the IEC 61851 grace after the offer stops) and emits only what changed, so no feature can
forget to open a contactor. Features never command an output themselves.
"""

from __future__ import annotations

import logging

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.connector import (
    Connector,
    contactor_wanted,
    ev_may_hold_on,
    lock_wanted,
    offer_withdrawn,
    offered_current,
    paused,
)
from agent.core.context import Context
from agent.core.types import ErrorCode

log = logging.getLogger(__name__)

OFFER_STOP_GRACE = 6.0  # s an EV in C may keep the contactor after the offer stops (seq. 10.2)
# IEC 61851-1:2017 Table A.6, sequence 9.x (a change of the PWM offer; the EV follows within
# 5 s): the EVSE changes the offer toward the EV at most once every 5 s, as EVerest does
# (../shared/reference/hardware.md 1.3). Our reading: the spacing binds raising or lowering
# the offer within one transaction, and resuming after a limit paused it; going to "no
# charging" is never held back (the EV must stop drawing promptly, and the seq. 10.2 grace
# covers it), nor are the first offer of a transaction and the return after a fault cleared.
OFFER_SPACING = 5.0
LOCK_RETRY = 5.0  # s between attempts to drive a lock that failed


class Outputs:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._contactor: dict[int, bool] = {}
        self._offer: dict[int, float] = {}
        self._lock: dict[int, bool] = {}
        # Connectors in the grace after the offer stopped: False while it runs, True once over.
        self._offer_stop: dict[int, bool] = {}
        self._unlock_answers: set[int] = set()  # UnlockConnector awaits the lock
        # cid -> (tx_ref, mono) of the last change that binds the next one to OFFER_SPACING
        self._offer_changed: dict[int, tuple[int, float]] = {}
        self._offer_held: set[int] = set()  # a change waits for OFFER_SPACING (timer "offer")

    def contactor_closed(self, connector_id: int) -> bool:
        return self._contactor.get(connector_id, False)

    def offering(self, connector_id: int) -> bool:
        return self._offer.get(connector_id, 0.0) > 0

    def on_started(self) -> None:
        """Everything off at start-up, whatever the hardware was left in; a plug left locked
        is freed (no transaction is running yet)."""
        for cid, connector in self._ctx.connectors.items():
            self._set_contactor(cid, False)
            self._set_offer(cid, 0.0)
            if connector.has_lock:
                self._lock[cid] = False
                self._ctx.emit(fx.SetLock(cid, False))

    def reconcile(self) -> None:
        """Per connector: open a contactor first, then the offer, then close a contactor, and
        only under an offer on the pilot (not while a new offer waits, OFFER_SPACING)."""
        for cid, connector in self._ctx.connectors.items():
            # The grace is looked at on every pass (never short-circuited): a resume ends it,
            # so the next pause gets its own 6 s instead of a stale, expired one.
            grace = self._offer_stop_grace(cid, connector)
            wanted = (contactor_wanted(connector) and not self._ctx.shutting_down) or grace
            if not wanted and self._contactor.get(cid) is not False:
                self._set_contactor(cid, False)
            offer = 0.0 if self._ctx.shutting_down else offered_current(connector)
            if self._offer.get(cid) != offer and not self._held(cid, connector, offer):
                self._set_offer(cid, offer)
                self._spaced(cid, connector)
            if wanted and not self._contactor.get(cid) and self._offer.get(cid, 0.0) > 0:
                self._set_contactor(cid, True)
            if connector.has_lock:
                self._reconcile_lock(cid, connector)

    def _set_contactor(self, cid: int, closed: bool) -> None:
        self._contactor[cid] = closed
        self._ctx.emit(fx.SetContactor(cid, closed))

    def _set_offer(self, cid: int, amps: float) -> None:
        self._offer[cid] = amps
        self._ctx.connectors[cid].offered = amps
        self._ctx.emit(fx.SetOfferedCurrent(cid, amps))

    def _held(self, cid: int, connector: Connector, offer: float) -> bool:
        """The change must wait (OFFER_SPACING); arms the timer ``offer`` once."""
        tx = connector.transaction
        last = self._offer_changed.get(cid)
        if offer == 0 or tx is None or last is None or last[0] != tx.tx_ref:
            return False
        wait = last[1] + OFFER_SPACING - self._ctx.now.mono
        if wait <= 0:
            return False
        if cid not in self._offer_held:
            self._offer_held.add(cid)
            self._ctx.emit(fx.StartTimer(f"offer:{cid}", wait))
        return True

    def _spaced(self, cid: int, connector: Connector) -> None:
        tx = connector.transaction
        binding = self._offer.get(cid, 0.0) > 0 or paused(connector)
        if tx is None or not binding:
            self._offer_changed.pop(cid, None)
        else:
            self._offer_changed[cid] = (tx.tx_ref, self._ctx.now.mono)

    def on_offer_timer(self, arg: str) -> None:
        """The held change may go now: the reconcile after this event applies it."""
        self._offer_held.discard(int(arg))

    def _offer_stop_grace(self, cid: int, connector: Connector) -> bool:
        """IEC 61851-1 Table A.6 seq. 10.2: when the offer drops to "no charging" and the EV
        stays in C, the contactor stays closed for the EV to stop drawing, and is forced
        open after OFFER_STOP_GRACE s (timer ``offer_stop``). True while it may stay closed."""
        grace = self._offer_stop
        # The grace runs from the moment the pilot stopped offering until it offers again: a
        # resume still held by OFFER_SPACING does not end it (the EV sees no offer yet), so a
        # pause in that window keeps the first stop's deadline instead of a fresh 6 s.
        silent = self._offer.get(cid, 0.0) == 0 and ev_may_hold_on(connector)
        holding = (self._contactor.get(cid, False) and not self._ctx.shutting_down
                   and (offer_withdrawn(connector) or silent))
        if not holding:
            if grace.pop(cid, None) is False:
                self._ctx.emit(fx.CancelTimer(f"offer_stop:{cid}"))
            return False
        if cid not in grace:
            grace[cid] = False
            self._ctx.emit(fx.StartTimer(f"offer_stop:{cid}", OFFER_STOP_GRACE))
        return not grace[cid]

    def on_offer_stop_timer(self, arg: str) -> None:
        if int(arg) in self._offer_stop:
            log.warning("connector %s: EV still in C %s s after the offer stopped: "
                        "opening the contactor under load", arg, OFFER_STOP_GRACE)
            self._offer_stop[int(arg)] = True

    # --- the connector lock ------------------------------------------------------------

    def unlock(self, connector_id: int) -> None:
        """Drive the lock open even where the core believes it open already: the CSMS's
        UnlockConnector awaits what the lock does (SetLock.answer)."""
        self._unlock_answers.add(connector_id)

    def _reconcile_lock(self, cid: int, connector: Connector) -> None:
        """The lock follows the transaction (:func:`lock_wanted`)."""
        wanted = lock_wanted(connector)
        answer = cid in self._unlock_answers
        self._unlock_answers.discard(cid)
        if self._lock.get(cid) is wanted and not answer:
            return
        self._lock[cid] = wanted
        connector.lock_confirmed = False
        self._ctx.emit(fx.CancelTimer(f"lock:{cid}"))
        self._ctx.emit(fx.SetLock(cid, wanted, answer))

    def on_lock_moved(self, event: ev.LockMoved) -> None:
        """A lock that does not move is ConnectorLockFailure (the connector is Faulted, so the
        contactor stays open) and is driven again every LOCK_RETRY s until it obeys."""
        cid = event.connector_id
        connector = self._ctx.connectors[cid]
        if self._lock.get(cid) is not event.locked:
            return  # a newer command is on its way
        code = ErrorCode.CONNECTOR_LOCK_FAILURE.value
        if event.ok:
            connector.lock_confirmed = event.locked
            connector.faults.pop(code, None)
            return
        word = "lock" if event.locked else "unlock"
        connector.faults[code] = event.info or f"connector did not {word}"
        self._ctx.emit(fx.StartTimer(f"lock:{cid}", LOCK_RETRY))

    def on_lock_retry(self, arg: str) -> None:
        cid = int(arg)
        locked = self._lock.get(cid)
        if locked is not None:
            self._ctx.emit(fx.SetLock(cid, locked))
