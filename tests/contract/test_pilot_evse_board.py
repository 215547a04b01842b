"""EvseBoardPilot against EvseBoardEmulator: polling thread, offered current, lost board."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from evsim.modbus_devices import BusServer, EvseBoardEmulator, serve_bus
from hal.errors import ConfigurationError, PilotError
from hal.modbus_bus import ModbusBus
from hal.pilot_evse_board import EvseBoardPilot, next_poll, offered_register_value, poll_period
from hal.roles import ControlPilot, PilotState
from tests.contract.recorder import Recorder


class Rig:
    def __init__(self, server: BusServer, board: EvseBoardEmulator) -> None:
        self.server = server
        self.board = board
        self.bus: ModbusBus = server.client_bus(timeout=0.25, retries=0)
        self.states: Recorder[PilotState] = Recorder()
        self.failures: Recorder[BaseException | None] = Recorder()
        self.pilot = EvseBoardPilot(
            self.bus,
            board.device_id,
            poll_interval=0.01,
            failure_threshold=2,
            on_failure=self.failures,
        )


@pytest.fixture(params=["rtu-tcp", "pty"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    board = EvseBoardEmulator(device_id=1)
    server = await serve_bus([board], transport=request.param)
    rig = Rig(server, board)
    yield rig
    await rig.pilot.aclose()
    rig.bus.close()
    await server.close()


def test_offer_register_rounds_down_and_respects_iec_minimum() -> None:
    assert [offered_register_value(a) for a in (0, 5.9, 6, 16.99, 32, 99)] == [0, 0, 6, 16, 32, 80]
    with pytest.raises(ConfigurationError):
        offered_register_value(-1)


async def test_pilot_satisfies_the_role(rig: Rig) -> None:
    assert isinstance(rig.pilot, ControlPilot)


async def test_initial_state_then_every_change_on_the_polling_thread(rig: Rig) -> None:
    rig.board.vehicle_state = 1
    await rig.pilot.start(rig.states)
    await rig.states.until_value(PilotState.A)
    for code, state in [(2, PilotState.B), (3, PilotState.C), (4, PilotState.D), (5, PilotState.F)]:
        rig.board.vehicle_state = code
        await rig.states.until_value(state)
    assert rig.states.values == [PilotState(s) for s in "ABCDF"]
    assert threading.main_thread() not in rig.states.threads
    assert rig.pilot.state is PilotState.F


async def test_offered_current_lands_in_the_board(rig: Rig) -> None:
    await rig.pilot.set_offered_current(16.7)
    assert rig.board.configured_current == 16
    await rig.pilot.set_offered_current(0)
    assert rig.board.configured_current == 0


async def test_aclose_withdraws_the_offer_and_is_idempotent(rig: Rig) -> None:
    await rig.pilot.start(rig.states)
    await rig.pilot.set_offered_current(32)
    await rig.pilot.aclose()
    await rig.pilot.aclose()
    assert rig.board.configured_current == 0


async def test_lost_board_reports_e_and_failure_then_recovers(rig: Rig) -> None:
    rig.board.vehicle_state = 3
    await rig.pilot.start(rig.states)
    await rig.states.until_value(PilotState.C)
    rig.board.offline = True
    await rig.states.until_value(PilotState.E)
    failures = await rig.failures.until(lambda v: len(v) >= 1)
    assert isinstance(failures[0], PilotError)
    rig.board.offline = False
    await rig.failures.until(lambda v: v[-1:] == [None])
    await rig.states.until(lambda v: v[-1] is PilotState.C)
    assert rig.states.values == [PilotState.C, PilotState.E, PilotState.C]


async def test_board_failure_response_counts_as_a_failed_poll(rig: Rig) -> None:
    rig.board.exception = True
    await rig.pilot.start(rig.states)
    await rig.states.until_value(PilotState.E)
    assert isinstance((await rig.failures.until(lambda v: len(v) >= 1))[0], PilotError)


async def test_set_offered_current_on_a_silent_board_raises_pilot_error(rig: Rig) -> None:
    rig.board.offline = True
    with pytest.raises(PilotError):
        await rig.pilot.set_offered_current(10)


def test_polls_keep_a_fixed_schedule_that_the_round_trip_does_not_stretch() -> None:
    # The poll due at 1.000 took 4 ms: the next starts at 1.020, not 1.024.
    assert next_poll(1.000, 0.020, now=1.004) == pytest.approx(1.020)
    # A poll that overran its slot (a timeout) is followed at once; missed slots are skipped.
    assert next_poll(1.000, 0.020, now=1.500) == 1.500


def test_the_board_is_polled_twice_as_often_charging_and_every_0_4_s_unplugged() -> None:
    assert [poll_period(0.05, state) for state in PilotState] == [
        0.4, 0.05, 0.025, 0.025, 0.05, 0.05]  # A B C D E F
    # Unplugged, never more often than poll_interval, and the idle period is a parameter.
    assert poll_period(1.0, PilotState.A) == 1.0
    assert poll_period(0.05, PilotState.A, idle_poll_interval=0.2) == 0.2
