"""GpioRcdInput on gpiozero mock pins: a trip opens the contactor on the pin's thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hal.contactor_gpio import GpioContactor
from hal.interlock import SafetyInterlock
from hal.rcd_gpio import GpioRcdInput
from hal.roles import PilotState

RCD, RELAY = 26, 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def test_a_trip_opens_the_contactor_through_the_interlock_and_holds_it(
    factory: MockFactory,
) -> None:
    contactor = GpioContactor(RELAY, pin_factory=factory)
    interlock = SafetyInterlock(contactor)
    rcd = GpioRcdInput(RCD, pin_factory=factory)
    seen: list[bool] = []

    def changed(tripped: bool) -> None:
        interlock.trip(tripped)
        seen.append(tripped)

    rcd.watch(changed)
    interlock.on_pilot(PilotState.C)
    assert interlock.request(True)

    factory.pin(RCD).drive_high()  # MockPin calls back on this thread, as a Pi's factory would
    assert seen == [True] and rcd.tripped
    assert not contactor.commanded_closed
    assert not interlock.request(True)

    factory.pin(RCD).drive_low()
    assert seen == [True, False] and not rcd.tripped
    assert interlock.request(True)
    rcd.close()
    rcd.close()
    assert not rcd.tripped
    contactor.close()


def test_active_low_wiring(factory: MockFactory) -> None:
    factory.pin(RCD).drive_high()
    rcd = GpioRcdInput(RCD, active_high=False, pin_factory=factory)
    assert not rcd.tripped
    factory.pin(RCD).drive_low()
    assert rcd.tripped
    rcd.close()
