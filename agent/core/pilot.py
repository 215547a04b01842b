"""The control pilot: what the EV does (IEC 61851 states A-F) and what follows from it.

A plug-in starts the transaction a token waits for, or claims a token presented before it; an
unplug ends the transaction (StopTransactionOnEVSideDisconnect) or leaves it SuspendedEV
(TC_005_3); E and F are faults (:class:`agent.core.faults.Faults`).
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.authorization import Authorizer
from agent.core.availability import Availability
from agent.core.connector import Connector
from agent.core.context import Context
from agent.core.faults import Faults
from agent.core.lifecycle import Phase
from agent.core.transactions import Transactions
from agent.core.types import StopReason, TxTrigger
from hal.roles import PilotState


class Pilot:
    def __init__(self, ctx: Context, faults: Faults, authorizer: Authorizer,
                 transactions: Transactions, availability: Availability) -> None:
        self._ctx = ctx
        self._faults = faults
        self._authorizer = authorizer
        self._transactions = transactions
        self._availability = availability

    def on_pilot(self, event: ev.PilotChanged) -> None:
        connector = self._ctx.connectors[event.connector_id]
        state = event.state
        old = connector.pilot
        connector.pilot = state
        connector.pilot_read = True
        if state.wants_energy and connector.transaction is not None:
            connector.transaction.awaiting_ev = False
        self._faults.track_pilot(connector, state)
        if state.plugged and not old.plugged:
            self._on_plug(connector)
        elif state is PilotState.A and old is not PilotState.A:
            self._on_unplug(connector)

    def _on_plug(self, connector: Connector) -> None:
        self._ctx.emit(fx.CancelTimer(f"connection:{connector.connector_id}"))
        if connector.phase is Phase.AUTHORIZED:  # card first: the plug-in starts it
            auth = connector.authorization
            connector.lifecycle.fire("plug")
            assert auth is not None
            self._transactions.begin(connector, auth, TxTrigger.CABLE_PLUGGED_IN)
            return
        if not connector.lifecycle.fire("plug"):
            return
        auth = self._authorizer.claim(connector)
        if auth is not None:
            self._authorizer.admit(connector, auth, TxTrigger.CABLE_PLUGGED_IN)

    def _on_unplug(self, connector: Connector) -> None:
        tx = connector.transaction
        if tx is not None and tx.stopping is None:
            if self._ctx.settings.bool("StopTransactionOnEVSideDisconnect"):
                self._transactions.stop(connector, StopReason.EV_DISCONNECTED)
            return  # TC_005_3: otherwise the transaction stays open, SuspendedEV
        if tx is None:
            connector.lifecycle.fire("unplug")
            self._availability.apply_pending(connector)
