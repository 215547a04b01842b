"""Transactions: begin, start on the meter's start value, sample, stop, end.

A transaction *begins* when a token is accepted on a plugged-in connector (it is then
Preparing) and *starts* once the meter's start value is read (:class:`Metering` calls
:meth:`Transactions.start`), which sends TransactionStarted. A stop records the reason and
asks for the final meter value; :meth:`Transactions.finish` then sends TransactionEnded. Each
transaction numbers its messages (``seq_no``) from 0 without gaps.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.availability import Availability
from agent.core.connector import Authorization, Connector, Transaction
from agent.core.context import Context, Pending
from agent.core.types import AuthorizationInfo, AuthStatus, RequestStatus, StopReason, TxTrigger

EV_RESPONSE_GRACE = 5.0  # s an EV gets to answer the first offer before it counts as SuspendedEV

Remember = Callable[[str, AuthorizationInfo], None]
"""Where what the CSMS says of a token goes (the authorization cache)."""


class Transactions:
    def __init__(self, ctx: Context, availability: Availability, remember: Remember,
                 reservation_used: Callable[[int], None] = lambda _: None) -> None:
        self._ctx = ctx
        self._availability = availability
        self._remember = remember
        self._reservation_used = reservation_used  # the transaction ends the reservation

    def owner_of(self, id_tag: str) -> Connector | None:
        """The connector whose running transaction ``id_tag`` started (case-insensitive)."""
        for connector in self._ctx.connectors.values():
            tx = connector.transaction
            if tx is not None and tx.stopping is None and tx.id_tag.lower() == id_tag.lower():
                return connector
        return None

    def find(self, request: msg.CsmsRemoteStop) -> Connector | None:
        """The connector of the running transaction the CSMS names, by its id or ours."""
        for connector in self._ctx.connectors.values():
            tx = connector.transaction
            if tx is None or tx.stopping is not None:
                continue
            if request.tx_ref is None and tx.transaction_id == request.transaction_id:
                return connector
            if request.tx_ref is not None and tx.tx_ref == request.tx_ref:
                return connector
        return None

    def begin(self, connector: Connector, auth: Authorization, trigger: TxTrigger) -> None:
        connector.authorization = None
        connector.transaction = Transaction(
            tx_ref=self._ctx.next_tx_ref(),
            id_tag=auth.id_tag,
            group_id=auth.group_id,
            started_mono=self._ctx.now.mono,
            trigger=TxTrigger.REMOTE_START if auth.remote else trigger,
            remote_start_id=auth.remote_start_id,
            reservation_id=auth.reservation_id,
        )
        if auth.reservation_id is not None:
            self._reservation_used(auth.reservation_id)
        self._ctx.read_meter(connector, "start")

    def start(self, connector: Connector, energy_wh: float) -> None:
        """The start meter value is read: the transaction starts (or, faulted meanwhile, is
        abandoned: no transaction starts on a faulted connector, TC_041)."""
        tx = connector.transaction
        assert tx is not None
        if connector.faulted:
            self._abandon(connector)
            return
        tx.meter_start_wh = int(energy_wh)
        tx.started_at = self._ctx.now.utc
        self._ctx.send(self._started(connector, tx), Pending(
            "start", connector.connector_id, tx.id_tag, tx_ref=tx.tx_ref))
        self._arm_sampling(connector)
        tx.awaiting_ev = not connector.pilot.wants_energy
        if tx.awaiting_ev:
            self._ctx.emit(fx.StartTimer(f"ev_grace:{connector.connector_id}", EV_RESPONSE_GRACE))
        self._ctx.notice(connector.connector_id, "charging", tx.id_tag)

    def _started(self, connector: Connector, tx: Transaction) -> msg.TransactionStarted:
        assert tx.meter_start_wh is not None and tx.started_at is not None
        return msg.TransactionStarted(
            tx_ref=tx.tx_ref,
            connector_id=connector.connector_id,
            id_tag=tx.id_tag,
            meter_start_wh=tx.meter_start_wh,
            timestamp=tx.started_at,
            seq_no=tx.next_seq_no(),
            trigger=tx.trigger,
            reservation_id=tx.reservation_id,
            remote_start_id=tx.remote_start_id,
        )

    def _abandon(self, connector: Connector) -> None:
        connector.transaction = None
        connector.lifecycle.fire("end")
        if not connector.pilot.plugged:
            connector.lifecycle.fire("unplug")
        self._ctx.notice(connector.connector_id, "rejected", "faulted before the transaction began")

    def _arm_sampling(self, connector: Connector) -> None:
        interval = self._ctx.settings.int("MeterValueSampleInterval")
        if interval > 0:
            self._ctx.emit(fx.StartTimer(f"sample:{connector.connector_id}", float(interval)))

    def on_sample_timer(self, arg: str) -> None:
        connector = self._ctx.connectors[int(arg)]
        tx = connector.transaction
        if tx is None or tx.stopping is not None:
            return
        self._ctx.read_meter(connector, "sample")
        self._arm_sampling(connector)

    def on_ev_grace_timer(self, arg: str) -> None:
        tx = self._ctx.connectors[int(arg)].transaction
        if tx is not None:
            tx.awaiting_ev = False

    def stop(self, connector: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        tx = connector.transaction
        if tx is None or tx.stopping is not None:
            return
        tx.stopping = reason
        tx.stop_id_tag = id_tag
        self._ctx.emit(fx.CancelTimer(f"sample:{connector.connector_id}"))
        self._ctx.emit(fx.CancelTimer(f"ev_grace:{connector.connector_id}"))
        self._ctx.read_meter(connector, "stop")

    def stop_all(self, reason: StopReason) -> None:
        for connector in self._ctx.connectors.values():
            self.stop(connector, reason)

    def remote_stop(self, request: msg.CsmsRemoteStop) -> msg.CommandResult:
        connector = self.find(request)
        if connector is None:
            return msg.CommandResult(RequestStatus.REJECTED)  # TC_028, and a stopped one
        self.stop(connector, StopReason.REMOTE)
        return msg.CommandResult(RequestStatus.ACCEPTED)

    def finish(self, connector: Connector, energy_wh: float) -> None:
        """The stop meter value is read: the transaction ends."""
        tx = connector.transaction
        assert tx is not None and tx.stopping is not None
        meter_stop = max(int(energy_wh), tx.meter_start_wh or 0)
        req = msg.TransactionEnded(
            tx_ref=tx.tx_ref,
            connector_id=connector.connector_id,
            meter_stop_wh=meter_stop,
            timestamp=self._ctx.now.utc,
            reason=tx.stopping,
            seq_no=tx.next_seq_no(),
            id_tag=tx.stop_id_tag,
            samples=tuple(tx.end_samples),
        )
        self._ctx.send(req, Pending("stop", connector.connector_id, tx.id_tag, tx_ref=tx.tx_ref))
        connector.transaction = None
        connector.lifecycle.fire("end")
        if not connector.pilot.plugged:
            connector.lifecycle.fire("unplug")
        energy = meter_stop - (tx.meter_start_wh or 0)
        self._ctx.notice(connector.connector_id, "finished", f"{energy} Wh")
        self._availability.apply_pending(connector)

    def on_start_answer(self, ref: str, pending: Pending, conf: msg.InboundConf) -> None:
        if not isinstance(conf, msg.TransactionStartResult):
            return
        connector = self._ctx.connectors[pending.connector_id]
        tx = connector.transaction
        if tx is None or tx.tx_ref != pending.tx_ref:
            return  # already stopped; the delivery layer keeps the id for the end message
        if conf.transaction_id is not None:
            tx.transaction_id = conf.transaction_id
        if conf.info is not None:
            self._authorized_at_start(connector, tx, conf.info)

    def _authorized_at_start(self, connector: Connector, tx: Transaction,
                             info: AuthorizationInfo) -> None:
        self._remember(tx.id_tag, info)
        if info.group_id:
            tx.group_id = info.group_id
        if info.status is AuthStatus.ACCEPTED:
            return
        if self._ctx.settings.bool("StopTransactionOnInvalidId"):
            self.stop(connector, StopReason.DE_AUTHORIZED)
        else:
            tx.energy_allowed = False  # SuspendedEVSE until the EV leaves

    def on_end_answer(self, ref: str, pending: Pending, conf: msg.InboundConf) -> None:
        if isinstance(conf, msg.TransactionEndResult) and conf.info is not None:
            self._remember(pending.id_tag, conf.info)
