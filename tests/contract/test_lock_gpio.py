"""GpioConnectorLock on gpiozero mock pins, with a fake actuator moving the feedback contact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from hal.errors import ConfigurationError, LockError
from hal.lock_gpio import GpioConnectorLock
from hal.roles import ConnectorLock
from tests.contract.recorder import Recorder

LOCK, UNLOCK, FEEDBACK = 20, 21, 16


class Actuator:
    """The lock mechanism: moves while a motor output is on, unless jammed."""

    def __init__(self, factory: MockFactory) -> None:
        self.feedback = factory.pin(FEEDBACK)
        self.jammed = False
        self.both_on = False
        self.pins: dict[int, MotorPin] = {}

    def energized(self, pin: int) -> None:
        if all(p.state for p in self.pins.values()):
            self.both_on = True  # an H-bridge shorted through
        if self.jammed or self.feedback.function != "input":
            return
        if pin == LOCK:
            self.feedback.drive_high()
        else:
            self.feedback.drive_low()


class MotorPin(MockPin):  # type: ignore[misc]  # gpiozero is untyped
    def __init__(self, factory: MockFactory, info: Any, actuator: Actuator) -> None:
        super().__init__(factory, info)
        self.actuator = actuator
        actuator.pins[int(info.name[4:])] = self

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed and value:
            self.actuator.energized(int(self.info.name[4:]))
        return changed


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
def actuator(factory: MockFactory) -> Actuator:
    actuator = Actuator(factory)
    for pin in (LOCK, UNLOCK):
        factory.pin(pin, pin_class=MotorPin, actuator=actuator)
    return actuator


def make_lock(factory: MockFactory, **kwargs: Any) -> GpioConnectorLock:
    options: dict[str, Any] = {"pulse_s": 0.02, "timeout_s": 0.2, "pin_factory": factory}
    options.update(kwargs)
    return GpioConnectorLock(LOCK, UNLOCK, FEEDBACK, **options)


async def test_satisfies_the_role(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory)
    assert isinstance(lock, ConnectorLock)
    lock.close()


async def test_lock_and_unlock_pulse_and_check_the_feedback(
    factory: MockFactory, actuator: Actuator
) -> None:
    lock = make_lock(factory)
    assert lock.locked is False
    await lock.lock()
    assert lock.locked is True
    assert [s.state for s in factory.pin(LOCK).states] == [False, True, False]  # one pulse
    await lock.unlock()
    assert lock.locked is False
    assert [s.state for s in factory.pin(UNLOCK).states] == [False, True, False]
    assert not actuator.both_on
    lock.close()


async def test_already_locked_sends_no_pulse(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory)
    await lock.lock()
    await lock.lock()
    assert [s.state for s in factory.pin(LOCK).states] == [False, True, False]
    lock.close()


async def test_jammed_lock_raises_after_the_timeout_and_stops_the_motor(
    factory: MockFactory, actuator: Actuator
) -> None:
    lock = make_lock(factory)
    actuator.jammed = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LockError, match="did not lock"):
        await lock.lock()
    assert 0.2 <= loop.time() - started < 1.0
    assert factory.pin(LOCK).state is False
    actuator.jammed = False
    await lock.lock()  # works again once the fault clears
    actuator.jammed = True
    with pytest.raises(LockError, match="did not unlock"):
        await lock.unlock()
    lock.close()


async def test_lock_and_unlock_are_serialized(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory)
    await asyncio.gather(lock.lock(), lock.unlock(), lock.lock())
    assert lock.locked is True
    assert not actuator.both_on
    lock.close()


async def test_without_feedback_a_pulse_is_all(factory: MockFactory, actuator: Actuator) -> None:
    lock = GpioConnectorLock(LOCK, UNLOCK, pulse_s=0.01, timeout_s=0.01, pin_factory=factory)
    assert lock.locked is None
    actuator.jammed = True
    await lock.lock()  # nothing to check against
    assert [s.state for s in factory.pin(LOCK).states] == [False, True, False]
    lock.close()


async def test_active_low_outputs(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory, active_high=False)
    assert factory.pin(LOCK).state is True and factory.pin(UNLOCK).state is True  # both off
    lock.close()
    assert factory.pin(LOCK).state is True


async def test_feedback_edges_are_watched(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory)
    edges: Recorder[bool] = Recorder()
    lock.watch_feedback(edges)
    await lock.lock()
    factory.pin(FEEDBACK).drive_low()  # the plug forced out
    assert edges.values == [True, False]
    lock.watch_feedback(None)
    factory.pin(FEEDBACK).drive_high()
    assert edges.values == [True, False]
    lock.close()


async def test_close_is_idempotent_and_final(factory: MockFactory, actuator: Actuator) -> None:
    lock = make_lock(factory)
    lock.close()
    lock.close()
    assert lock.locked is None
    with pytest.raises(LockError):
        await lock.lock()
    make_lock(factory).close()  # the pins were released


def test_bad_timing_is_refused(factory: MockFactory) -> None:
    with pytest.raises(ConfigurationError):
        GpioConnectorLock(LOCK, UNLOCK, pulse_s=1.0, timeout_s=0.5, pin_factory=factory)
