"""agent.supervision: how often an idle meter is read, and how soon its fault is reported,
on a virtual clock (the supervisor's loop runs once per step of 0.25 virtual seconds)."""

from __future__ import annotations

import asyncio

from agent.config import parse_config
from agent.core import events as ev
from agent.core.types import ErrorCode
from agent.supervision import MeterHealth, Supervisor
from hal.errors import MeterError
from hal.roles import MeterReading

STEP = 0.25


class Meter:
    """A meter on a virtual clock (``now``), broken from ``broken_from`` on."""

    def __init__(self, broken_from: float | None = None) -> None:
        self.now = 0.0
        self.reads: list[float] = []
        self.broken_from = broken_from

    async def read(self) -> MeterReading:
        self.reads.append(self.now)
        if self.broken_from is not None and self.now >= self.broken_from:
            raise MeterError("no answer")
        return MeterReading(energy_wh=1000.0)

    async def aclose(self) -> None:
        pass


async def run_for(seconds: float, idle_meter_interval: float,
                  broken_from: float | None = None) -> tuple[Meter, list[ev.Event]]:
    posted: list[ev.Event] = []
    meter = Meter(broken_from)
    supervisor = Supervisor(posted.append, {}, {1: meter}, {1: MeterHealth(1, posted.append)},
                            interval=0, idle_meter_interval=idle_meter_interval,
                            clock=lambda: meter.now)
    task = asyncio.create_task(supervisor.run())
    while meter.now < seconds:
        for _ in range(3):
            await asyncio.sleep(0)
        meter.now += STEP
    task.cancel()
    return meter, posted


async def test_an_idle_meter_is_read_every_idle_meter_interval() -> None:
    meter, posted = await run_for(20.0, idle_meter_interval=5.0)
    assert meter.reads[0] == 0.0
    gaps = [later - earlier for earlier, later in zip(meter.reads, meter.reads[1:], strict=False)]
    assert len(gaps) >= 3 and all(5.0 <= gap <= 5.0 + STEP for gap in gaps)
    assert posted == []


async def test_a_meter_fault_on_an_idle_charger_shows_within_the_interval_and_two_retries(
) -> None:
    broken_from = 0.5  # just after a good read: the worst case
    _, posted = await run_for(12.0, idle_meter_interval=5.0, broken_from=broken_from)
    (fault,) = posted
    assert isinstance(fault, ev.DeviceFault)
    assert (fault.error_code, fault.active) == (ErrorCode.POWER_METER_FAILURE, True)


async def test_the_fault_time_follows_the_configured_interval() -> None:
    meter, posted = await run_for(9.0, idle_meter_interval=30.0, broken_from=0.5)
    assert posted == [] and meter.reads == [0.0]  # the old default: nothing for 30 s
    meter, posted = await run_for(9.0, idle_meter_interval=5.0, broken_from=0.5)
    assert len(posted) == 1
    assert 5.0 <= meter.reads[1] <= 5.0 + STEP  # the first failed read
    assert meter.reads[3] - meter.reads[1] <= 2 * (1.0 + STEP)  # two retries a second apart


def test_the_interval_is_a_configuration_key_with_a_short_default() -> None:
    base = '[charger]\nid = "CP-1"\n[csms]\nurl = "ws://127.0.0.1:9000/ocpp"\n' \
           '[[bus]]\nname = "rs485"\nport = "/dev/ttyUSB0"\n' \
           '[[connector]]\nid = 1\n[connector.contactor]\npin = 17\n' \
           '[connector.pilot]\nbus = "rs485"\n[connector.meter]\ndriver = "sdm630"\nbus = "rs485"\n'
    assert parse_config(base).supervision.idle_meter_interval == 5.0
    text = base + "[supervision]\nidle_meter_interval = 15\n"
    assert parse_config(text).supervision.idle_meter_interval == 15.0
