"""agent.supervision: a 1<->3 phase relay whose auxiliary contact disagrees with its command
is PowerSwitchFailure (the real driver on gpiozero mock pins)."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from agent.core import events as ev
from agent.core.types import ErrorCode
from agent.supervision import Supervisor
from hal.phase_switch_gpio import GpioPhaseSwitch


def test_a_phase_relay_that_disagrees_with_its_feedback_is_power_switch_failure() -> None:
    factory = MockFactory()
    relay = GpioPhaseSwitch(4, feedback_pin=7, pin_factory=factory)
    posted: list[ev.Event] = []
    now = [0.0]
    supervisor = Supervisor(posted.append, {}, {}, {}, clock=lambda: now[0])
    supervisor.watch_phase_relays({1: relay})
    factory.pin(7).drive_high()  # told 3, connects 3
    supervisor.check_phase_relays()
    relay.set_phases(1)  # the relay sticks: its contact still says 3
    for step in range(4):
        now[0] = step * 0.25
        supervisor.check_phase_relays()
    assert posted == [ev.DeviceFault(1, ErrorCode.POWER_SWITCH_FAILURE, True,
                                     "phase relay connects 3 phases, told 1")]
    factory.pin(7).drive_low()
    supervisor.check_phase_relays()
    assert posted[-1] == ev.DeviceFault(1, ErrorCode.POWER_SWITCH_FAILURE, False, None)
    relay.close()
    factory.reset()
