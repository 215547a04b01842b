"""The world on a fake clock: verbs, the EVSE board and meter it drives, contacts, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsim.world import ConflictError, InvalidValueError, UnknownConnectorError, World
from evsim.world_config import ConnectorConfig, WorldConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RecordingReader:
    port = "/dev/pts/fake"

    def __init__(self) -> None:
        self.cards: list[int] = []

    def present(self, card_id: int) -> None:
        self.cards.append(card_id)


def make_world(
    clock: FakeClock, state_file: Path | None = None, **connector: object
) -> World:
    config = WorldConfig(
        state_file=state_file, connectors=[ConnectorConfig.for_id(1, **connector)]
    )
    return World(config, reader=RecordingReader(), clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def charge(world: World, clock: FakeClock, amps: int = 16) -> None:
    world.plug(1)
    world.set_ev_state(1, "C")
    world.evse_board(1).configured_current = amps
    world.set_output(17, 1.0)
    clock.now += 0.05
    world.tick(clock.now)


def test_vehicle_state_on_the_board_mirrors_the_ev(clock: FakeClock) -> None:
    world = make_world(clock)
    board = world.evse_board(1)
    assert board.vehicle_state == 1
    world.plug(1)
    assert board.vehicle_state == 2
    world.set_ev_state(1, "C")
    assert board.vehicle_state == 3
    world.unplug(1)
    assert board.vehicle_state == 1


def test_connector_defaults_follow_the_id() -> None:
    second = ConnectorConfig.for_id(2)
    assert (second.evse_board_id, second.meter_id) == (3, 4)
    assert (second.relay_pin, second.feedback_pin) == (22, 23)


def test_meter_counts_only_while_charging(clock: FakeClock) -> None:
    world = make_world(clock)
    meter = world.meter(1)
    clock.now += 60
    world.tick(clock.now)
    assert meter.energy_kwh == pytest.approx(1234.5)
    charge(world, clock)
    assert meter.power_w == pytest.approx(3 * 230 * 16)
    assert meter.current_a == (16.0, 16.0, 16.0)
    clock.now += 3600
    world.tick(clock.now)
    assert meter.energy_kwh == pytest.approx(1234.5 + 3 * 230 * 16 / 1000)


def test_unplugging_integrates_up_to_the_moment_it_happens(clock: FakeClock) -> None:
    world = make_world(clock)
    charge(world, clock)
    before = world.meter(1).energy_kwh
    clock.now += 1800
    world.unplug(1)  # no tick in between: the verb integrates the half hour first
    assert world.meter(1).energy_kwh == pytest.approx(before + 3 * 230 * 16 / 2000)
    assert world.meter(1).power_w == 0


def test_contacts_follow_the_relay_after_a_delay(clock: FakeClock) -> None:
    world = make_world(clock)
    levels: list[tuple[int, bool]] = []
    world.add_input_listener(lambda pin, level: levels.append((pin, level)))
    world.set_output(17, 1.0)
    assert world.connector_state(1)["contactor"] == {
        "relay_closed": True, "feedback_closed": False, "fault": None,
    }
    due = world.next_event_at()
    assert due is not None and due > clock.now
    clock.now = due
    world.tick(clock.now)
    assert world.connector_state(1)["contactor"]["feedback_closed"] is True
    assert levels == [(27, True)]
    assert world.input_levels() == {27: True}


def test_a_released_pin_opens_the_relay(clock: FakeClock) -> None:
    world = make_world(clock)
    world.set_output(17, 1.0)
    world.set_output(17, None)
    assert world.connector_state(1)["contactor"]["relay_closed"] is False


def test_active_low_wiring(clock: FakeClock) -> None:
    world = make_world(clock, relay_active_high=False, feedback_active_high=False)
    assert world.input_levels() == {27: True}  # open contacts read high
    world.set_output(17, 0.0)
    clock.now += 1
    world.tick(clock.now)
    assert world.connector_state(1)["contactor"]["feedback_closed"] is True
    assert world.input_levels() == {27: False}


@pytest.mark.parametrize(("fault", "closed"), [("welded", True), ("stuck_open", False)])
def test_contactor_faults(clock: FakeClock, fault: str, closed: bool) -> None:
    world = make_world(clock)
    world.set_output(17, 0.0 if closed else 1.0)
    world.set_contactor_fault(1, fault)
    clock.now += 1
    world.tick(clock.now)
    assert world.connector_state(1)["contactor"]["feedback_closed"] is closed


def test_welded_contactor_from_the_config(clock: FakeClock) -> None:
    world = make_world(clock, contactor_fault="welded")
    assert world.connector_state(1)["contactor"]["feedback_closed"] is True


def test_cards_reach_the_reader(clock: FakeClock) -> None:
    world = make_world(clock)
    assert world.present_card("00a1b2c3")["uid"] == "00A1B2C3"
    reader = world._reader
    assert isinstance(reader, RecordingReader) and reader.cards == [0x00A1B2C3]


def test_verbs_check_their_arguments(clock: FakeClock) -> None:
    world = make_world(clock)
    with pytest.raises(UnknownConnectorError):
        world.plug(2)
    with pytest.raises(ConflictError):
        world.set_ev_state(1, "C")
    with pytest.raises(InvalidValueError) as bad:
        world.set_draw(1, float("nan"))
    assert bad.value.field == "amps"


def test_state_survives_a_world_restart(clock: FakeClock, tmp_path: Path) -> None:
    state_file = tmp_path / "world.json"
    world = make_world(clock, state_file)
    charge(world, clock)
    world.set_draw(1, 10)
    clock.now += 3600
    world.tick(clock.now)
    energy = world.meter(1).energy_kwh
    assert energy > 1234.5

    again = make_world(clock, state_file)
    state = again.connector_state(1)
    assert state["ev"]["state"] == "C" and state["ev"]["draw_a"] == 10.0
    assert again.meter(1).energy_kwh == pytest.approx(energy)
    assert again.evse_board(1).vehicle_state == 3


def test_charging_saves_at_most_once_a_second(clock: FakeClock, tmp_path: Path) -> None:
    state_file = tmp_path / "world.json"
    world = make_world(clock, state_file)
    charge(world, clock)
    assert state_file.exists()  # plug, ev C: every change is saved
    state_file.unlink()
    clock.now += 0.5
    world.tick(clock.now)
    assert not state_file.exists()
    clock.now += 0.6
    world.tick(clock.now)
    assert state_file.exists()


def test_an_unreadable_state_file_is_ignored(clock: FakeClock, tmp_path: Path) -> None:
    state_file = tmp_path / "world.json"
    state_file.write_text("{broken")
    world = make_world(clock, state_file)
    assert world.meter(1).energy_kwh == pytest.approx(1234.5)
