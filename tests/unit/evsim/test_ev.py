"""EV physics: who draws what, and energy that only grows while current flows."""

from __future__ import annotations

import pytest

from evsim.ev import NOMINAL_VOLTAGE_V, Ev, EvState, PowerPath


def requesting(**kwargs: float | int | None) -> Ev:
    return Ev(state=EvState.REQUESTING, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [EvState.UNPLUGGED, EvState.CONNECTED])
def test_no_current_unless_the_ev_asks_for_power(state: EvState) -> None:
    assert Ev(state=state).current_drawn(16, contactor_closed=True) == 0.0


def test_no_current_through_open_contacts() -> None:
    assert requesting().current_drawn(16, contactor_closed=False) == 0.0


@pytest.mark.parametrize("offer", [0, 5, 5.99])
def test_no_current_below_the_six_amp_minimum_offer(offer: float) -> None:
    assert requesting().current_drawn(offer, contactor_closed=True) == 0.0


def test_six_amps_is_enough() -> None:
    assert requesting().current_drawn(6, contactor_closed=True) == 6.0


@pytest.mark.parametrize(
    ("offer", "ev_max", "draw", "expected"),
    [
        (16, 32, None, 16),  # the offer limits
        (32, 16, None, 16),  # the EV's own limit
        (32, 32, 10, 10),  # the bench's draw
        (8, 32, 10, 8),  # the offer again, below the draw
        (16, 32, 0, 0),  # a full battery
    ],
)
def test_draw_is_the_least_of_offer_ev_limit_and_bench_draw(
    offer: float, ev_max: float, draw: float | None, expected: float
) -> None:
    ev = requesting(max_current_a=ev_max, draw_a=draw)
    assert ev.current_drawn(offer, contactor_closed=True) == expected


def charging_path(phases: int = 3, offer: float = 16) -> PowerPath:
    return PowerPath(
        requesting(phases=phases), energy_wh=1000.0, offered_a=offer, contactor_closed=True
    )


def test_power_is_phases_times_voltage_times_current() -> None:
    assert charging_path(phases=3).power_w == pytest.approx(3 * NOMINAL_VOLTAGE_V * 16)
    assert charging_path(phases=1).power_w == pytest.approx(NOMINAL_VOLTAGE_V * 16)


def test_single_phase_loads_l1_only() -> None:
    assert charging_path(phases=1).phase_currents_a == (16.0, 0.0, 0.0)
    assert charging_path(phases=3).phase_currents_a == (16.0, 16.0, 16.0)


def test_energy_integrates_power_over_time() -> None:
    path = charging_path(phases=3, offer=16)
    added = path.advance(3600.0)
    assert added == pytest.approx(3 * 230 * 16)  # Wh in one hour
    assert path.energy_wh == pytest.approx(1000.0 + 3 * 230 * 16)


def test_energy_stands_still_while_no_current_flows() -> None:
    path = charging_path()
    path.contactor_closed = False
    assert path.advance(600.0) == 0.0
    path.contactor_closed, path.offered_a = True, 0
    assert path.advance(600.0) == 0.0
    path.offered_a, path.ev.state = 16, EvState.CONNECTED
    assert path.advance(600.0) == 0.0
    assert path.energy_wh == 1000.0


def test_advance_ignores_time_going_backwards() -> None:
    path = charging_path()
    assert path.advance(-1.0) == 0.0
    assert path.energy_wh == 1000.0
