"""Metering: meter reads turned into samples, and the clock-aligned sampling schedule.

One meter read serves every purpose waiting for it (:meth:`Context.read_meter`): a
transaction's start or stop value, a periodic sample (Sample.Periodic), a clock-aligned one
(Sample.Clock), a triggered one. Samples in a transaction are TransactionUpdated messages
and may also be kept for the transaction's end (StopTxn*Data); outside one they are
MeterValuesReported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.connector import Connector, Transaction, drawn_phases
from agent.core.context import Context, Pending
from agent.core.transactions import Transactions
from hal.roles import MeterReading

log = logging.getLogger(__name__)

MAX_END_SAMPLES = 500  # samples kept for the end of a transaction (1.6 transactionData)

PHASES = ("L1", "L2", "L3")


@dataclass(frozen=True)
class Offer:
    """What the charger offers the EV when a sample is taken (Current.Offered, Power.Offered)."""

    amps: float
    watts: float


def offer_of(connector: Connector) -> Offer:
    """The pilot's offer now; in W with the phases the EV draws (else 3): P = U * I * phases."""
    phases = drawn_phases(connector) or 3
    return Offer(connector.offered, connector.offered * connector.voltage * phases)


def meter_sample(reading: MeterReading, measurands: tuple[str, ...], at: datetime,
                 context: str = "Sample.Periodic", offer: Offer | None = None
                 ) -> msg.MeterSample:
    """The measurands asked for, taken from one reading (and the offer), in OCPP units. The
    energy register stands in when none of the asked measurands is available."""
    values: list[msg.SampledValue] = []
    for measurand in measurands:
        values.extend(_sampled(measurand, reading))
        if offer is not None and measurand == "Current.Offered":
            values.append(msg.SampledValue(measurand, offer.amps, "A"))
        if offer is not None and measurand == "Power.Offered":
            values.append(msg.SampledValue(measurand, offer.watts, "W"))
    if not values:
        values.append(msg.SampledValue("Energy.Active.Import.Register", reading.energy_wh, "Wh"))
    return msg.MeterSample(at, tuple(values), context)


def _sampled(measurand: str, reading: MeterReading) -> list[msg.SampledValue]:
    if measurand == "Energy.Active.Import.Register":
        return [msg.SampledValue(measurand, reading.energy_wh, "Wh")]
    if measurand == "Power.Active.Import" and reading.power_w is not None:
        return [msg.SampledValue(measurand, reading.power_w, "W")]
    if measurand == "Frequency" and reading.frequency_hz is not None:
        return [msg.SampledValue(measurand, reading.frequency_hz, "Hz")]
    per_phase = {"Current.Import": (reading.current_a, "A"), "Voltage": (reading.voltage_v, "V")}
    values, unit = per_phase.get(measurand, (None, ""))
    if values is None:
        return []
    return [msg.SampledValue(measurand, v, unit, p) for v, p in zip(values, PHASES, strict=True)]


def seconds_to_next_aligned(now: datetime, interval: int) -> float:
    """Seconds from ``now`` to the next multiple of ``interval`` counted from midnight UTC
    (ClockAlignedDataInterval); a full interval when ``now`` sits exactly on one."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight) / timedelta(seconds=1)
    remainder = elapsed % interval
    return interval - remainder if remainder > 0 else float(interval)


class Metering:
    def __init__(self, ctx: Context, transactions: Transactions) -> None:
        self._ctx = ctx
        self._transactions = transactions

    def on_reading(self, event: ev.MeterSampled) -> None:
        connector = self._ctx.connectors[event.connector_id]
        connector.last_reading = event.reading
        self._serve(connector, event.reading.energy_wh, event.reading)

    def on_read_failed(self, event: ev.MeterReadFailed) -> None:
        """A transaction starts or ends on the last value known (or its start value)."""
        connector = self._ctx.connectors[event.connector_id]
        log.warning("connector %s: meter read failed: %s", connector.connector_id, event.detail)
        last = connector.last_reading
        tx = connector.transaction
        fallback = last.energy_wh if last else float(tx.meter_start_wh or 0) if tx else 0.0
        self._serve(connector, fallback, None)

    def _serve(self, connector: Connector, energy_wh: float,
               reading: MeterReading | None) -> None:
        purposes = self._ctx.take_reads(connector.connector_id)
        tx = connector.transaction
        if "start" in purposes and tx is not None and tx.meter_start_wh is None:
            self._transactions.start(connector, energy_wh)
        if reading is not None:
            if "sample" in purposes:
                self._send_sample(connector, reading, "Sample.Periodic")
            if "aligned" in purposes:
                self._send_sample(connector, reading, "Sample.Clock")
            if "trigger" in purposes:
                self._send_triggered(connector, reading)
        if "stop" in purposes and connector.transaction is not None:
            self._transactions.finish(connector, energy_wh)

    def _send_sample(self, connector: Connector, reading: MeterReading, context: str) -> None:
        tx = connector.transaction
        aligned = context == "Sample.Clock"
        key = "MeterValuesAlignedData" if aligned else "MeterValuesSampledData"
        sample = meter_sample(reading, self._ctx.settings.csl(key), self._ctx.now.utc, context,
                              self._offer(connector))
        cid = connector.connector_id
        if tx is None:
            self._ctx.send(msg.MeterValuesReported(cid, (sample,)), Pending("meter", cid))
            return
        req = msg.TransactionUpdated(tx.tx_ref, cid, (sample,), tx.next_seq_no())
        self._ctx.send(req, Pending("meter", cid, tx_ref=tx.tx_ref))
        self._keep_for_end(connector, tx, reading, aligned, context)

    def _keep_for_end(self, connector: Connector, tx: Transaction, reading: MeterReading,
                      aligned: bool, context: str) -> None:
        key = "StopTxnAlignedData" if aligned else "StopTxnSampledData"
        measurands = self._ctx.settings.csl(key)
        if measurands and len(tx.end_samples) < MAX_END_SAMPLES:
            tx.end_samples.append(meter_sample(reading, measurands, self._ctx.now.utc, context,
                                               self._offer(connector)))

    def _send_triggered(self, connector: Connector, reading: MeterReading) -> None:
        """TriggerMessage MeterValues: a sample outside the transaction's sequence."""
        measurands = self._ctx.settings.csl("MeterValuesSampledData")
        sample = meter_sample(reading, measurands, self._ctx.now.utc, "Trigger",
                              self._offer(connector))
        tx = connector.transaction
        req = msg.MeterValuesReported(connector.connector_id, (sample,))
        self._ctx.send(req, Pending("meter", connector.connector_id,
                                    tx_ref=tx.tx_ref if tx else 0))

    def _offer(self, connector: Connector) -> Offer:
        return offer_of(connector)

    def arm_aligned(self) -> None:
        interval = self._ctx.settings.int("ClockAlignedDataInterval")
        if interval > 0:
            delay = seconds_to_next_aligned(self._ctx.now.utc, interval)
            self._ctx.emit(fx.StartTimer("aligned", delay))
        else:
            self._ctx.emit(fx.CancelTimer("aligned"))

    def on_interval_changed(self) -> None:
        if self._ctx.registration.accepted:
            self.arm_aligned()

    def on_aligned_timer(self, arg: str) -> None:
        for connector in self._ctx.connectors.values():
            self._ctx.read_meter(connector, "aligned")
        self.arm_aligned()
