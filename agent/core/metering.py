"""Meter samples in OCPP terms, and the clock-aligned sampling schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

from agent.core import messages as msg
from hal.roles import MeterReading

PHASES = ("L1", "L2", "L3")


def meter_sample(reading: MeterReading, measurands: tuple[str, ...], at: datetime,
                 context: str = "Sample.Periodic") -> msg.MeterSample:
    """The measurands asked for, taken from one reading, in OCPP units. The energy register
    stands in when none of the asked measurands is available."""
    values: list[msg.SampledValue] = []
    for measurand in measurands:
        values.extend(_sampled(measurand, reading))
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
