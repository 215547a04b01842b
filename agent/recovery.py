"""Recovery after a crash or a power cut: settle the transactions the journal shows as open.

:func:`recover` runs at start, before the core and before the link. A transaction is open when
its StartTransaction was journaled and its StopTransaction was not: the agent died while it
ran. The journal still holds the messages that were not confirmed; recovery only adds what the
dead agent could not.

Policy ``end`` (``[recovery] policy = "end"`` in the configuration, the default and the only
one so far): end each open transaction with reason PowerLoss. ``meterStop`` is read live from
the connector's meter (the register counts on while the agent is down, until the contactor
drops), falling back to the last meter value journaled for it when the meter does not answer;
it is never below ``meterStart``. The timestamp is that of the last journaled activity of the
transaction, the best estimate of when power was lost. The StopTransaction goes at the end of
the journal, so the messages pending from before the crash are delivered first, in order, then
this stop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.core import messages as msg
from agent.core.types import StopReason
from agent.journal import Journal
from agent.store import Store, TransactionRow
from hal.errors import DeviceError
from hal.roles import EnergyMeter

log = logging.getLogger(__name__)

METER_READ_TIMEOUT = 5.0  # seconds; then the last journaled value is used


class RecoveryPolicy(enum.StrEnum):
    """What to do with a transaction that was open when the agent died."""

    END = "end"  # stop it with reason PowerLoss, meterStop read live


# Chosen by ``[recovery] policy`` (agent.config.RECOVERY_POLICIES lists the same values). A
# ``resume`` policy (keep the transaction when the EV is still plugged, OCPP 1.6 leaves this to
# the charger) would be added here as a second value, and there.
DEFAULT_POLICY = RecoveryPolicy.END


@dataclass(frozen=True)
class Settled:
    """What recovery did with one open transaction."""

    tx_ref: int
    connector_id: int
    meter_stop_wh: int
    timestamp: datetime
    meter_read_live: bool  # False: the meter did not answer, the last journaled value was used


async def recover(store: Store, meters: Mapping[int, EnergyMeter],
                  policy: RecoveryPolicy = DEFAULT_POLICY,
                  new_ref: Callable[[], str] = lambda: str(uuid.uuid4())) -> list[Settled]:
    """Settle every open transaction in ``store`` by ``policy``; each is journaled in its own
    commit. Raises StoreError when the store cannot be read or written."""
    journal = Journal(store)
    settled = []
    for tx in journal.open_transactions():
        if policy is RecoveryPolicy.END:
            settled.append(await _end(journal, tx, meters.get(tx.connector_id), new_ref()))
    return settled


async def _end(journal: Journal, tx: TransactionRow, meter: EnergyMeter | None,
               ref: str) -> Settled:
    live = await _read(meter, tx.connector_id)
    value = live if live is not None else tx.last_meter_wh
    meter_stop = max(int(value) if value is not None else tx.meter_start, tx.meter_start)
    stop = msg.TransactionEnded(
        tx_ref=tx.tx_ref,
        connector_id=tx.connector_id,
        meter_stop_wh=meter_stop,
        timestamp=tx.last_activity_at,
        reason=StopReason.POWER_LOSS,
        seq_no=tx.last_seq_no + 1,
    )
    journal.append(ref, stop)
    log.warning(
        "recovery: transaction %s on connector %s was open when the agent stopped; ended with "
        "PowerLoss at %s, meterStop %d Wh (%s)", tx.tx_ref, tx.connector_id,
        tx.last_activity_at.isoformat(), meter_stop,
        "read from the meter" if live is not None else "last journaled value",
    )
    return Settled(tx.tx_ref, tx.connector_id, meter_stop, tx.last_activity_at,
                   live is not None)


async def _read(meter: EnergyMeter | None, connector_id: int) -> float | None:
    """The meter's energy register now, or None when it does not answer."""
    if meter is None:
        return None
    try:
        reading = await asyncio.wait_for(meter.read(), METER_READ_TIMEOUT)
    except (DeviceError, OSError, TimeoutError) as error:
        log.warning("recovery: meter of connector %s does not answer: %s", connector_id, error)
        return None
    return reading.energy_wh
