"""GpioContactor on gpiozero mock pins, and pin factories chosen by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hal.contactor_gpio import GpioContactor
from hal.errors import ConfigurationError, ContactorError
from hal.gpio import make_pin_factory
from hal.roles import Contactor
from tests.contract.recorder import Recorder

COIL, AUX = 17, 27


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def coil_level(factory: MockFactory) -> bool:
    return bool(factory.pin(COIL).state)


def test_satisfies_the_role(factory: MockFactory) -> None:
    contactor = GpioContactor(COIL, pin_factory=factory)
    assert isinstance(contactor, Contactor)
    contactor.close()


def test_starts_open_and_switches_active_high(factory: MockFactory) -> None:
    contactor = GpioContactor(COIL, pin_factory=factory)
    assert (contactor.commanded_closed, coil_level(factory)) == (False, False)
    contactor.set_closed(True)
    assert (contactor.commanded_closed, coil_level(factory)) == (True, True)
    contactor.set_closed(False)
    assert (contactor.commanded_closed, coil_level(factory)) == (False, False)
    contactor.close()


def test_active_low_relay_board(factory: MockFactory) -> None:
    contactor = GpioContactor(COIL, active_high=False, pin_factory=factory)
    assert coil_level(factory) is True  # high = relay off
    contactor.set_closed(True)
    assert coil_level(factory) is False
    contactor.close()
    assert coil_level(factory) is True


def test_no_feedback_pin_means_none(factory: MockFactory) -> None:
    contactor = GpioContactor(COIL, pin_factory=factory)
    assert contactor.feedback_closed is None
    contactor.watch_feedback(lambda closed: None)  # no-op without an input
    contactor.close()


@pytest.mark.parametrize("active_high", [True, False])
def test_feedback_read_and_watched(factory: MockFactory, active_high: bool) -> None:
    contactor = GpioContactor(
        COIL, feedback_pin=AUX, feedback_active_high=active_high, pin_factory=factory
    )
    edges: Recorder[bool] = Recorder()
    contactor.watch_feedback(edges)
    aux = factory.pin(AUX)
    closed_level, open_level = (aux.drive_high, aux.drive_low)[:: 1 if active_high else -1]
    open_level()  # a floating mock pin reads low, which is "closed" when active-low
    closed_level()
    assert contactor.feedback_closed is True
    open_level()
    assert contactor.feedback_closed is False
    assert edges.values[-2:] == [True, False]
    contactor.watch_feedback(None)
    closed_level()
    assert edges.values[-2:] == [True, False]
    contactor.close()


def test_close_opens_first_and_is_idempotent(factory: MockFactory) -> None:
    contactor = GpioContactor(COIL, feedback_pin=AUX, pin_factory=factory)
    contactor.set_closed(True)
    contactor.close()
    contactor.close()
    assert factory.pin(COIL).states[-1].state is False
    assert (contactor.commanded_closed, contactor.feedback_closed) == (False, None)
    contactor.set_closed(False)  # opening never fails
    with pytest.raises(ContactorError):
        contactor.set_closed(True)
    GpioContactor(COIL, pin_factory=factory).close()  # the pins were released


def test_make_pin_factory_by_name() -> None:
    factory = make_pin_factory("mock")
    assert isinstance(factory, MockFactory)
    assert isinstance(make_pin_factory("MOCK"), MockFactory)
    assert make_pin_factory(None) is None
    with pytest.raises(ConfigurationError, match="mock"):
        make_pin_factory("no-such-factory")
