"""PlausibleMeter: implausible readings are discarded, three bad reads in a row are a failure."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.errors import ConfigurationError, MeterError
from hal.meter_plausibility import MeterLimits, PlausibleMeter, implausibility
from hal.roles import EnergyMeter, MeterReading

GOOD = MeterReading(
    energy_wh=1_234_500.0, power_w=11_040.0, voltage_v=(230.0, 231.0, 229.0),
    current_a=(16.0, 16.0, 16.0), frequency_hz=50.0,
)
NAN = float("nan")


def reading(**changes: object) -> MeterReading:
    values = {**GOOD.__dict__, **changes}
    return MeterReading(**values)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedMeter:
    """Answers each read() with the next item: a reading, or an exception to raise."""

    def __init__(self, script: Sequence[MeterReading | Exception]) -> None:
        self.script = list(script)
        self.reads = 0
        self.closed = False

    async def read(self) -> MeterReading:
        self.reads += 1
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True


def wrap(script: Sequence[MeterReading | Exception], clock: FakeClock | None = None
         ) -> tuple[PlausibleMeter, ScriptedMeter]:
    inner = ScriptedMeter(script)
    return PlausibleMeter(inner, retry_delay=0, clock=clock or FakeClock()), inner


def test_satisfies_the_role() -> None:
    assert isinstance(wrap([])[0], EnergyMeter)


async def test_good_readings_pass_through_unchanged() -> None:
    meter, inner = wrap([GOOD])
    assert await meter.read() is GOOD
    assert inner.reads == 1


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (reading(energy_wh=NAN), "energy"),
        (reading(energy_wh=-1.0), "energy"),
        (reading(energy_wh=math.inf), "energy"),
        (reading(power_w=NAN), "power"),
        (reading(power_w=-500.0), "power"),
        (reading(power_w=3 * 230 * 80 * 1.2 + 1), "power"),
        (reading(voltage_v=(230.0, 149.0, 230.0)), "voltage L2"),
        (reading(voltage_v=(301.0, 230.0, 230.0)), "voltage L1"),
        (reading(voltage_v=(230.0, 230.0, NAN)), "voltage L3"),
        (reading(current_a=(-1.0, 0.0, 0.0)), "current L1"),
        (reading(current_a=(0.0, 0.0, 200.0)), "current L3"),
        (reading(frequency_hz=0.0), "frequency"),
    ],
)
async def test_an_implausible_reading_is_discarded_and_read_again(
    bad: MeterReading, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert why in (implausibility(bad, MeterLimits()) or "")
    meter, inner = wrap([bad, GOOD])
    assert await meter.read() is GOOD
    assert inner.reads == 2
    assert "discarding implausible reading" in caplog.text


async def test_small_negative_power_at_no_load_is_fine() -> None:
    meter, _ = wrap([reading(power_w=-3.0)])
    assert (await meter.read()).power_w == -3.0


async def test_missing_quantities_are_not_checked() -> None:
    bare = MeterReading(energy_wh=10.0)
    meter, _ = wrap([bare])
    assert await meter.read() is bare


async def test_single_phase_meter_ignores_l2_l3() -> None:
    single = reading(voltage_v=(230.0, 0.0, 0.0), current_a=(16.0, 0.0, 0.0), power_w=3680.0)
    inner = ScriptedMeter([single])
    meter = PlausibleMeter(inner, MeterLimits(phases=1), retry_delay=0, clock=FakeClock())
    assert await meter.read() is single
    assert implausibility(single, MeterLimits(phases=3)) is not None


async def test_energy_going_backwards_is_discarded() -> None:
    clock = FakeClock()
    meter, inner = wrap([GOOD, reading(energy_wh=GOOD.energy_wh - 0.5),
                         reading(energy_wh=GOOD.energy_wh + 0.5)], clock)
    await meter.read()
    clock.now += 10
    assert (await meter.read()).energy_wh == GOOD.energy_wh + 0.5
    assert inner.reads == 3


async def test_energy_jumps_beyond_full_power_are_discarded() -> None:
    clock = FakeClock()
    full_power_10s = 3 * 230 * 80 * 1.2 * 10 / 3600  # 184 Wh
    meter, _ = wrap([GOOD, reading(energy_wh=GOOD.energy_wh + 10_000),
                     reading(energy_wh=GOOD.energy_wh + full_power_10s)], clock)
    await meter.read()
    clock.now += 10
    assert (await meter.read()).energy_wh == GOOD.energy_wh + full_power_10s


async def test_a_garbage_spike_does_not_poison_the_baseline() -> None:
    clock = FakeClock()
    spike = reading(energy_wh=9e9)
    meter, _ = wrap([GOOD, spike, reading(energy_wh=GOOD.energy_wh + 1)], clock)
    await meter.read()
    clock.now += 1
    assert (await meter.read()).energy_wh == GOOD.energy_wh + 1


async def test_three_bad_reads_in_a_row_are_a_meter_error() -> None:
    meter, inner = wrap([MeterError("timeout"), reading(energy_wh=NAN), MeterError("crc"),
                         GOOD])
    with pytest.raises(MeterError, match="3 bad reads in a row; last: crc"):
        await meter.read()
    assert inner.reads == 3
    assert await meter.read() is GOOD  # the next read starts afresh: a recovered meter works


async def test_failed_reads_then_a_good_one_is_fine() -> None:
    meter, _ = wrap([MeterError("timeout"), MeterError("timeout"), GOOD])
    assert await meter.read() is GOOD


async def test_other_errors_are_not_swallowed() -> None:
    meter, _ = wrap([RuntimeError("bug")])
    with pytest.raises(RuntimeError):
        await meter.read()


async def test_aclose_closes_the_meter() -> None:
    meter, inner = wrap([])
    await meter.aclose()
    assert inner.closed


def test_bad_limits() -> None:
    with pytest.raises(ConfigurationError):
        MeterLimits(phases=4)
    with pytest.raises(ConfigurationError):
        MeterLimits(voltage_range=(300.0, 150.0))
    with pytest.raises(ConfigurationError):
        PlausibleMeter(ScriptedMeter([]), attempts=0)


floats = st.floats(allow_nan=True, allow_infinity=True)
triples = st.none() | st.tuples(floats, floats, floats)


@given(floats, st.none() | floats, triples, triples, st.none() | floats)
def test_anything_is_judged_without_raising(
    energy: float, power: float | None, volts: tuple[float, float, float] | None,
    amps: tuple[float, float, float] | None, hz: float | None,
) -> None:
    result = implausibility(MeterReading(energy, power, volts, amps, hz), MeterLimits(),
                            previous=(1000.0, 0.0), now=1.0)
    assert result is None or isinstance(result, str)
    if any(isinstance(v, float) and math.isnan(v)
           for v in (energy, power, hz, *(volts or ()), *(amps or ()))):
        assert result is not None


@given(st.floats(min_value=0, max_value=1e9), st.floats(min_value=0, max_value=1e6),
       st.floats(min_value=0, max_value=3600))
def test_energy_is_monotonic_and_bounded(start: float, step: float, seconds: float) -> None:
    limits = MeterLimits()
    verdict = implausibility(MeterReading(start + step), limits, (start, 0.0), seconds)
    if verdict is None:
        assert step <= limits.max_power_w * seconds / 3600 + 1 + (start + step) * 2**-22
