"""World fault knobs on a fake clock: what each one changes, the lock, the RCD, the config."""

from __future__ import annotations

import pytest

from evsim.world import ConflictError, InvalidValueError, LockModel, World
from evsim.world_config import (
    CONNECTOR_FAULT_NAMES,
    ConnectorConfig,
    WorldConfig,
    WorldConfigError,
    world_config_from_dict,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class PluggableReader:
    port = "/dev/pts/fake"

    def __init__(self) -> None:
        self.plugged = True

    def present(self, card_id: int) -> None:
        if not self.plugged:
            raise RuntimeError("unplugged")

    def unplug(self) -> None:
        self.plugged = False

    def replug(self) -> None:
        self.plugged = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    config = WorldConfig(connectors=[ConnectorConfig.for_id(1), ConnectorConfig.for_id(2)])
    return World(config, reader=PluggableReader(), clock=clock)


def test_every_connector_fault_round_trips(world: World) -> None:
    for fault in CONNECTOR_FAULT_NAMES:
        if fault == "contactor_stuck_open":
            world.set_fault(1, "contactor_welded", False)
        assert fault in world.set_fault(1, fault, True)["faults"]
        assert fault not in world.set_fault(1, fault, False)["faults"]
    assert world.connector_state(1)["faults"] == []


def test_faults_are_the_emulator_knobs(world: World) -> None:
    world.set_fault(1, "meter_offline", True)
    world.set_fault(1, "meter_garbage", True)
    world.set_fault(1, "evse_board_offline", True)
    assert world.meter(1).offline and world.meter(1).exception and world.evse_board(1).offline
    world.evse_board(1).offline = False  # a test turning a knob directly is seen too
    assert "evse_board_offline" not in world.connector_state(1)["faults"]


def test_pilot_faults_hold_the_board_in_failure_until_all_clear(world: World) -> None:
    world.plug(1)
    world.set_fault(1, "pilot_f", True)
    world.set_fault(1, "diode_failure", True)
    assert world.evse_board(1).vehicle_state == 5
    world.set_fault(1, "pilot_f", False)
    assert world.connector_state(1)["pilot"] == "F"
    world.set_fault(1, "diode_failure", False)
    assert world.connector_state(1)["pilot"] == "B"


def test_implausible_meter_runs_backwards_at_zero_volts(world: World) -> None:
    before = world.meter(1).energy_kwh
    world.set_fault(1, "meter_implausible", True)
    assert world.meter(1).energy_kwh == pytest.approx(before - 10)
    assert world.meter(1).voltage_v == (0.0, 0.0, 0.0)
    world.set_fault(1, "meter_implausible", False)
    assert world.meter(1).energy_kwh == pytest.approx(before)


def test_reader_unplugged_on_connector_zero(world: World) -> None:
    assert world.set_fault(0, "reader_unplugged", True)["faults"] == ["reader_unplugged"]
    assert world.snapshot()["reader"]["plugged"] is False
    with pytest.raises(ConflictError):
        world.present_card("00A1B2C3")
    assert world.set_fault(0, "reader_unplugged", False)["faults"] == []


def test_the_tamper_switch_reads_open_while_the_station_fault_is_on(clock: FakeClock) -> None:
    world = World(WorldConfig(tamper_pin=7), clock=clock)
    levels: list[tuple[int, bool]] = []
    world.add_input_listener(lambda pin, level: levels.append((pin, level)))
    assert 7 not in world.input_levels()  # floating until first driven, as the RCD
    assert world.set_fault(0, "tamper", True)["faults"] == ["tamper"]
    assert world.input_levels()[7] is True and levels == [(7, True)]
    assert world.set_fault(0, "tamper", False)["faults"] == []
    assert levels == [(7, True), (7, False)]
    with pytest.raises(InvalidValueError, match="station-wide"):
        world.set_fault(1, "tamper", True)


def test_tamper_pin_from_the_toml() -> None:
    assert world_config_from_dict({"tamper_pin": 0}).tamper_pin == 0  # BCM 0 is a pin
    assert world_config_from_dict({"tamper_pin": False}).tamper_pin is None
    assert world_config_from_dict({}).tamper_pin is None


def test_no_tamper_switch_wired_is_a_conflict(world: World) -> None:
    with pytest.raises(ConflictError, match="tamper_pin"):
        world.set_fault(0, "tamper", True)


def test_the_lock_follows_its_motor_unless_jammed(world: World) -> None:
    world.set_output(20, 1.0)
    assert world.connector_state(1)["lock"] == {"locked": True, "motor": "lock"}
    assert world.input_levels()[16] is True
    world.set_output(20, 0.0)
    world.set_fault(1, "lock_failure", True)
    world.set_output(21, 1.0)
    assert world.connector_state(1)["lock"]["locked"] is True
    world.set_fault(1, "lock_failure", False)  # the motor is still on: it moves now
    assert world.connector_state(1)["lock"]["locked"] is False
    assert world.input_levels()[16] is False  # driven low from now on


def test_both_motor_outputs_on_move_nothing() -> None:
    lock = LockModel()
    lock.drive(True, 1.0)
    lock.drive(False, 1.0)
    assert lock.locked is True
    lock.drive(True, None)
    assert lock.locked is False


def test_optional_inputs_are_left_floating_until_they_go_high(
    world: World, clock: FakeClock
) -> None:
    levels: list[tuple[int, bool]] = []
    world.add_input_listener(lambda pin, level: levels.append((pin, level)))
    assert 26 not in world.input_levels()
    world.set_fault(1, "rcd_trip", True)
    assert world.input_levels()[26] is True and (26, True) in levels
    world.set_fault(1, "rcd_trip", False)
    assert world.input_levels()[26] is False and levels[-1] == (26, False)


def test_tripped_rcd_stops_the_current(world: World, clock: FakeClock) -> None:
    world.plug(1)
    world.set_ev_state(1, "C")
    world.evse_board(1).configured_current = 16
    world.set_output(17, 1.0)
    clock.now += 0.05
    world.tick(clock.now)
    assert world.meter(1).power_w > 0
    world.set_fault(1, "rcd_trip", True)
    assert world.meter(1).power_w == 0
    assert world.connector_state(1)["contactor"]["relay_closed"] is True


def test_bad_fault_arguments(world: World) -> None:
    with pytest.raises(InvalidValueError, match="fault"):
        world.set_fault(1, "gremlins", True)
    with pytest.raises(InvalidValueError, match="active"):
        world.set_fault(1, "meter_offline", 1)
    with pytest.raises(ConflictError):
        world.set_fault(2, "lock_failure", True)


def test_active_low_rcd_and_lock_feedback_are_driven_from_the_start(clock: FakeClock) -> None:
    config = WorldConfig(connectors=[ConnectorConfig.for_id(
        1, rcd_active_high=False, lock_feedback_active_high=False)])
    world = World(config, clock=clock)
    assert world.input_levels()[26] is True and world.input_levels()[16] is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"connectors": [{"id": 1, "rcd_pin": 17}]}, "already used"),
        ({"connectors": [{"id": 1}, {"id": 2, "relay_pin": 26}]}, "already used"),
        ({"connectors": [{"id": 2, "lock_pin": 20}]}, "go together"),
        ({"connectors": [{"id": 2, "lock_feedback_pin": 16}]}, "needs lock_pin"),
        ({"connectors": [{"id": 1, "rcd_pin": "26"}]}, "rcd_pin"),
        ({"tamper_pin": 17}, "already used"),
        ({"tamper_pin": "7"}, "tamper_pin"),
    ],
)
def test_bad_pin_settings_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(WorldConfigError, match=message):
        world_config_from_dict(data)


def test_false_means_not_wired() -> None:
    config = world_config_from_dict({"connectors": [
        {"id": 1, "rcd_pin": False, "lock_pin": False, "unlock_pin": False,
         "lock_feedback_pin": False},
    ]})
    (connector,) = config.connectors
    assert connector.rcd_pin is None and not connector.has_lock
