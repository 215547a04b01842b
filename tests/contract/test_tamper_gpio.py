"""GpioTamperInput on gpiozero mock pins: the enclosure switch reports opening and closing.

Mock pins do not debounce (gpiozero's Pi factories do, ``bounce_time``), so chatter is not
exercised here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hal.tamper_gpio import GpioTamperInput

TAMPER = 7


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def test_opening_and_closing_the_enclosure_call_back_on_the_pins_thread(
        factory: MockFactory) -> None:
    tamper = GpioTamperInput(TAMPER, pin_factory=factory)
    seen: list[bool] = []
    tamper.watch(seen.append)
    assert not tamper.opened

    factory.pin(TAMPER).drive_high()  # MockPin calls back on this thread, as a Pi's would
    assert seen == [True] and tamper.opened
    factory.pin(TAMPER).drive_low()
    assert seen == [True, False] and not tamper.opened

    tamper.watch(None)
    factory.pin(TAMPER).drive_high()
    assert seen == [True, False]  # no longer watched
    tamper.close()
    tamper.close()
    assert not tamper.opened


def test_active_low_wiring(factory: MockFactory) -> None:
    factory.pin(TAMPER).drive_high()
    tamper = GpioTamperInput(TAMPER, active_high=False, pin_factory=factory)
    assert not tamper.opened
    factory.pin(TAMPER).drive_low()
    assert tamper.opened
    tamper.close()
