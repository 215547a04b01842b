"""GpioPhaseSwitch against the simulated world's pins: the relay output drives the world's
phase relay (what the EV can draw on, what the meter shows), the world drives the feedback
input, both polarities."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from evsim.world import World
from evsim.world_config import ConnectorConfig, WorldConfig
from hal.errors import ConfigurationError
from hal.phase_switch_gpio import GpioPhaseSwitch
from hal.roles import PhaseSwitch

RELAY, FEEDBACK, CONTACTOR = 4, 7, 17


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class WiredPin(MockPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock pin whose output level goes to the world, as the pin bus would carry it."""

    world: World | None = None

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if self.world is not None and self.function == "output":
            self.world.set_output(int(self.info.name[4:]), 1.0 if value else 0.0)
        return changed


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=WiredPin)
    yield factory
    factory.reset()


def wire(factory: MockFactory, clock: Clock, *, active_high: bool = True,
         feedback_active_high: bool = True) -> World:
    connector = ConnectorConfig.for_id(
        1, phase_pin=RELAY, phase_active_high=active_high, phase_feedback_pin=FEEDBACK,
        phase_feedback_active_high=feedback_active_high, lock_pin=None, unlock_pin=None,
        lock_feedback_pin=None, rcd_pin=None)
    world = World(WorldConfig(reader_link=None, connectors=[connector]), clock=clock)
    WiredPin.world = world

    def drive(pin: int, level: bool) -> None:
        mock: Any = factory.pin(pin)
        (mock.drive_high if level else mock.drive_low)()

    world.add_input_listener(drive)
    return world


def charge(world: World, clock: Clock, factory: MockFactory) -> None:
    world.plug(1)
    world.set_ev_state(1, "C")
    world.evse_board(1).configured_current = 16
    world.set_output(CONTACTOR, 1.0)
    clock.now += 0.05
    world.tick(clock.now)


def feedback_level(world: World, factory: MockFactory) -> None:
    """Push the world's input levels to the pins (the bus does this on connect)."""
    for pin, level in world.input_levels().items():
        mock: Any = factory.pin(pin)
        (mock.drive_high if level else mock.drive_low)()


@pytest.mark.parametrize(("active_high", "feedback_active_high"),
                         [(True, True), (False, False), (True, False)])
def test_relay_moves_the_worlds_phases_and_the_feedback_follows(
        factory: MockFactory, active_high: bool, feedback_active_high: bool) -> None:
    clock = Clock()
    world = wire(factory, clock, active_high=active_high,
                 feedback_active_high=feedback_active_high)
    feedback_level(world, factory)
    switch = GpioPhaseSwitch(RELAY, active_high=active_high, feedback_pin=FEEDBACK,
                             feedback_active_high=feedback_active_high, pin_factory=factory)
    assert isinstance(switch, PhaseSwitch)
    assert world.connector_state(1)["phases_connected"] == 3  # started in the default
    assert (switch.phases, switch.feedback_phases) == (3, 3)
    switch.set_phases(1)
    assert world.connector_state(1)["phases_connected"] == 1
    assert (switch.phases, switch.feedback_phases) == (1, 1)
    charge(world, clock, factory)
    assert world.meter(1).current_a == (16.0, 0.0, 0.0)  # the EV draws on L1 only
    switch.close()
    assert world.connector_state(1)["phases_connected"] == 1  # released: one phase


def test_three_phases_on_the_meter_and_a_switch_under_load_is_seen(
        factory: MockFactory) -> None:
    clock = Clock()
    world = wire(factory, clock)
    switch = GpioPhaseSwitch(RELAY, default_phases=1, pin_factory=factory)
    assert world.connector_state(1)["phases_connected"] == 1
    switch.set_phases(3)
    charge(world, clock, factory)
    assert world.meter(1).current_a == (16.0, 16.0, 16.0)
    assert world.connector_state(1)["phase_switch"]["switched_under_load"] == 0
    switch.set_phases(1)  # what the agent never does: the world counts it
    assert world.connector_state(1)["phase_switch"]["switched_under_load"] == 1
    switch.close()


def test_without_feedback_and_bad_values(factory: MockFactory) -> None:
    switch = GpioPhaseSwitch(RELAY, pin_factory=factory)
    assert switch.feedback_phases is None
    with pytest.raises(ValueError, match="1 or 3"):
        switch.set_phases(2)
    switch.close()
    switch.close()  # idempotent
    with pytest.raises(ConfigurationError):
        switch.set_phases(3)
    with pytest.raises(ConfigurationError):
        GpioPhaseSwitch(RELAY, default_phases=2, pin_factory=factory)
