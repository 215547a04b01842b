"""An EnergyMeter wrapper that keeps implausible readings away from the books.

A reading is discarded (and logged) when a value is NaN, infinite or negative, the import
energy register went backwards or jumped more than the connector could have drawn since the
last good reading, the power exceeds ``phases x 230 V x max_current x 1.2``, a phase voltage
lies outside ``voltage_range``, or the frequency outside 45..65 Hz. A failed read
(:class:`hal.errors.MeterError`) counts the same.

:meth:`PlausibleMeter.read` reads again, ``retry_delay`` apart, until it gets a good reading,
and raises :class:`MeterError` after ``attempts`` failed or implausible reads in a row, which
the agent reports as PowerMeterFailure. A good reading passes through unchanged; the wrapper
never invents or returns a stale one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from hal.errors import ConfigurationError, MeterError
from hal.roles import EnergyMeter, MeterReading

logger = logging.getLogger(__name__)

NOMINAL_VOLTAGE_V = 230.0
POWER_MARGIN = 1.2
FREQUENCY_RANGE_HZ = (45.0, 65.0)
MAX_ENERGY_WH = 1e11  # 100 GWh: more than any meter's display holds (SDM: 99,999,999.9 kWh)
FLOAT32_EPSILON = 2.0**-23


@dataclass(frozen=True)
class MeterLimits:
    """What a reading from one connector's meter can physically be.

    ``power_noise_w``: meters report a few W of negative power at no load; less than this
    below zero is accepted as is. ``energy_slack_wh``: a jump allowance on top of full power
    (one register step of a float32 kWh register is covered separately).
    """

    phases: int = 3
    max_current_a: float = 80.0
    voltage_range: tuple[float, float] = (150.0, 300.0)
    power_noise_w: float = 10.0
    energy_slack_wh: float = 1.0

    def __post_init__(self) -> None:
        if self.phases not in (1, 2, 3) or self.max_current_a <= 0:
            raise ConfigurationError("meter limits need phases 1..3 and max_current_a > 0")
        low, high = self.voltage_range
        if not 0 <= low < high:
            raise ConfigurationError(f"voltage_range must be low < high, not {low}..{high}")

    @property
    def max_power_w(self) -> float:
        return self.phases * NOMINAL_VOLTAGE_V * self.max_current_a * POWER_MARGIN


def implausibility(
    reading: MeterReading,
    limits: MeterLimits,
    previous: tuple[float, float] | None = None,
    now: float = 0.0,
) -> str | None:
    """Why ``reading`` cannot be right, or None when it can.

    ``previous`` is (energy Wh, monotonic time) of the last good reading; ``now`` the time of
    this one.
    """
    return (
        _energy_problem(reading.energy_wh, limits, previous, now)
        or _power_problem(reading.power_w, limits)
        or _phase_problem("voltage", reading.voltage_v, limits, limits.voltage_range)
        or _phase_problem("current", reading.current_a, limits,
                          (0.0, limits.max_current_a * POWER_MARGIN))
        or _range_problem("frequency", reading.frequency_hz, FREQUENCY_RANGE_HZ)
    )


def _energy_problem(
    energy: float, limits: MeterLimits, previous: tuple[float, float] | None, now: float
) -> str | None:
    if not math.isfinite(energy) or not 0 <= energy <= MAX_ENERGY_WH:
        return f"energy {energy} Wh is not a register value"
    if previous is None:
        return None
    last_energy, last_time = previous
    if energy < last_energy:
        return f"energy went backwards: {last_energy} -> {energy} Wh"
    hours = max(0.0, now - last_time) / 3600.0
    allowed = limits.max_power_w * hours + limits.energy_slack_wh + energy * FLOAT32_EPSILON * 2
    if energy - last_energy > allowed:
        return f"energy jumped {energy - last_energy:.1f} Wh in {hours * 3600:.1f} s"
    return None


def _power_problem(power: float | None, limits: MeterLimits) -> str | None:
    if power is None:
        return None
    if not math.isfinite(power) or power < -limits.power_noise_w:
        return f"power {power} W"
    if power > limits.max_power_w:
        return f"power {power} W above {limits.max_power_w:.0f} W"
    return None


def _phase_problem(
    name: str,
    values: tuple[float, float, float] | None,
    limits: MeterLimits,
    bounds: tuple[float, float],
) -> str | None:
    if values is None:
        return None
    for phase, value in enumerate(values[: limits.phases], start=1):
        if problem := _range_problem(f"{name} L{phase}", value, bounds):
            return problem
    return None


def _range_problem(name: str, value: float | None, bounds: tuple[float, float]) -> str | None:
    if value is None:
        return None
    low, high = bounds
    if not math.isfinite(value) or not low <= value <= high:
        return f"{name} {value} outside {low}..{high}"
    return None


class PlausibleMeter:
    """``meter`` (owned: closed by :meth:`aclose`) with its readings checked against ``limits``."""

    def __init__(
        self,
        meter: EnergyMeter,
        limits: MeterLimits | None = None,
        *,
        attempts: int = 3,
        retry_delay: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        name: str = "meter",
    ) -> None:
        if attempts < 1 or retry_delay < 0:
            raise ConfigurationError("need attempts >= 1 and retry_delay >= 0")
        self._meter = meter
        self.limits = limits or MeterLimits()
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._clock = clock
        self._name = name
        self._last_good: tuple[float, float] | None = None

    async def read(self) -> MeterReading:
        """A good reading, or MeterError after ``attempts`` bad reads in a row."""
        problem = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._retry_delay)
            try:
                reading = await self._meter.read()
            except MeterError as exc:
                problem = str(exc)
                logger.warning("%s: read failed: %s", self._name, problem)
                continue
            now = self._clock()
            found = implausibility(reading, self.limits, self._last_good, now)
            if found is None:
                self._last_good = (reading.energy_wh, now)
                return reading
            problem = found
            logger.warning("%s: discarding implausible reading: %s", self._name, problem)
        raise MeterError(f"{self._name}: {self._attempts} bad reads in a row; last: {problem}")

    async def aclose(self) -> None:
        """Close the wrapped meter. Idempotent if it is."""
        await self._meter.aclose()
