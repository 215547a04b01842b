"""agent.supervision: how often an idle meter is read, and how soon its fault is reported,
on a virtual clock (the supervisor's loop runs once per step of 0.25 virtual seconds)."""

from __future__ import annotations

import asyncio

from agent.config import parse_config
from agent.core import effects as fx
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
                            interval=0, idle_interval=0, idle_meter_interval=idle_meter_interval,
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


class Contactor:
    """A contactor whose auxiliary contact is ``feedback`` whatever it is told."""

    def __init__(self, feedback: bool) -> None:
        self.commanded_closed = False
        self.feedback_closed: bool | None = feedback

    def set_closed(self, closed: bool) -> None:
        self.commanded_closed = closed

    def close(self) -> None:
        self.commanded_closed = False


def supervisor_of(contactor: Contactor, posted: list[ev.Event],
                  now: list[float]) -> Supervisor:
    # An idle pause of an hour: only the wake-up can bring the next check in this test.
    return Supervisor(posted.append, {1: contactor}, {}, {}, interval=0, idle_interval=3600,
                      clock=lambda: now[0])


def test_the_check_is_frequent_while_a_contactor_is_closed_or_disagrees_and_slow_otherwise(
) -> None:
    contactor, now = Contactor(feedback=False), [0.0]
    supervisor = Supervisor([].append, {1: contactor}, {}, {}, clock=lambda: now[0])
    supervisor.check_contactors()
    assert supervisor.pause() == 1.0  # open and agreeing: the idle charger
    contactor.commanded_closed = True
    assert supervisor.pause() == 0.25  # closed: a contact that drops out is found soon
    contactor.commanded_closed, contactor.feedback_closed = False, True
    supervisor.check_contactors()
    assert supervisor.pause() == 0.25  # open but the contact still closed: a weld?
    contactor.feedback_closed = False
    supervisor.check_contactors()
    assert supervisor.pause() == 1.0


async def test_a_close_commanded_by_the_core_is_checked_at_once_not_after_the_idle_pause(
) -> None:
    posted: list[ev.Event] = []
    contactor, now = Contactor(feedback=False), [0.0]  # its contact never closes
    supervisor = supervisor_of(contactor, posted, now)
    supervisor.on_event(ev.LinkUp(), [])  # nothing about the contactor: no wake-up
    task = asyncio.create_task(supervisor.run())
    for _ in range(5):
        await asyncio.sleep(0)  # the first check; then the idle pause of an hour begins
    contactor.set_closed(True)
    supervisor.on_event(ev.LinkUp(), [fx.SetContactor(1, True)])
    for _ in range(5):
        await asyncio.sleep(0)  # woken: the disagreement is seen, the 0.5 s settling starts
    now[0] = 0.6
    for _ in range(10):
        await asyncio.sleep(0)  # closed: checked every `interval` (0 here) again
    task.cancel()
    assert [(p.error_code, p.active, p.info) for p in posted if isinstance(p, ev.DeviceFault)] \
        == [(ErrorCode.POWER_SWITCH_FAILURE, True, "contactor stuck_open")]


class PhaseRelay:
    """A phase relay told ``phases`` whose auxiliary contact reports ``feedback_phases``."""

    def __init__(self) -> None:
        self.phases = 3
        self.feedback_phases: int | None = 3


def test_a_phase_relay_agreeing_again_does_not_clear_a_welded_contactor() -> None:
    """The contactor and the phase relay both report PowerSwitchFailure on one connector: the
    fault stays while either disagrees (a welded contactor must keep blocking sessions)."""
    posted: list[ev.Event] = []
    contactor, relay, now = Contactor(feedback=True), PhaseRelay(), [0.0]  # welded
    supervisor = Supervisor(posted.append, {1: contactor}, {}, {}, clock=lambda: now[0])
    supervisor.watch_phase_relays({1: relay})  # type: ignore[dict-item]
    relay.feedback_phases = 1  # told 3, connects 1
    for moment in (0.0, 0.6):
        now[0] = moment
        supervisor.check_contactors()
        supervisor.check_phase_relays()
    relay.feedback_phases = 3  # the relay agrees again; the contactor is still welded
    now[0] = 1.2
    supervisor.check_phase_relays()
    faults = [e for e in posted if isinstance(e, ev.DeviceFault)]
    assert faults and all(f.error_code == ErrorCode.POWER_SWITCH_FAILURE for f in faults)
    assert faults[-1].active and "contactor" in (faults[-1].info or "")
    contactor.feedback_closed = False  # the weld freed: now nothing disagrees
    now[0] = 1.8
    supervisor.check_contactors()
    assert posted[-1] == ev.DeviceFault(1, ErrorCode.POWER_SWITCH_FAILURE, False, None)
