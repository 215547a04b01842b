"""1 <-> 3 phase switching in the core (agent/core/phases.py): when the charger switches,
the safety sequence (offer 0, contactor open, relay, settle, offer again), one transaction
throughout, the minimum interval, and "never under load" over random event sequences."""

from __future__ import annotations

import random

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.context import PhaseSwitchSpec
from agent.core.phases import CONTACTS_OPEN
from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.core.types import LocalLimits
from hal.roles import MeterReading

from .harness import CoreHarness
from .test_smart_charging import TAG, profile, set_profile

SPEC = PhaseSwitchSpec(default=3, settle=5.0, min_interval=300.0)
THREE = (9.0, 9.0, 9.0)
ONE = (9.0, 0.0, 0.0)


def charging(spec: PhaseSwitchSpec | None = SPEC) -> CoreHarness:
    h = CoreHarness(phase_switch=spec)
    h.boot()
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.accept_start(transaction_id=1)
    h.pilot("C")
    assert h.contactor(1)
    h.feed(ev.MeterSampled(1, MeterReading(1000, 6000, (230, 230, 230), THREE)))
    return h


def timeline(h: CoreHarness, since: int = 0) -> list[tuple[float, str]]:
    """The connector's output commands in order, with the time each came."""
    out: list[tuple[float, str]] = []
    for when, effect in h.timed[since:]:
        if isinstance(effect, fx.SetContactor):
            out.append((when, "closed" if effect.closed else "open"))
        elif isinstance(effect, fx.SetOfferedCurrent):
            out.append((when, f"offer {effect.amps:g}"))
        elif isinstance(effect, fx.SetPhases):
            out.append((when, f"phases {effect.phases}"))
    return out


def phases_set(h: CoreHarness) -> list[int]:
    return [e.phases for e in h.effects if isinstance(e, fx.SetPhases)]


def test_the_key_says_whether_a_relay_is_configured() -> None:
    assert CoreHarness(phase_switch=SPEC).settings.bool("ConnectorSwitch3to1PhaseSupported")
    assert not CoreHarness().settings.bool("ConnectorSwitch3to1PhaseSupported")


def test_a_watt_limit_that_fits_one_phase_switches_to_one_phase() -> None:
    h = charging()
    mark = len(h.timed)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 3000)], unit="W"))
    connector = h.station.connectors[1]
    assert connector.switching_phases and h.statuses(1)[-1] == "SuspendedEVSE"
    h.pilot("B")  # the EV stops drawing on the "no charging" offer
    h.advance(CONTACTS_OPEN)
    h.advance(SPEC.settle)
    assert not connector.switching_phases and connector.active_phases == 1
    assert connector.limit_amps is not None and abs(connector.limit_amps - 3000 / 230) < 0.01
    h.pilot("C")
    assert timeline(h, mark) == [
        (0.0, "offer 0"), (0.0, "open"), (CONTACTS_OPEN, "phases 1"),
        (CONTACTS_OPEN + SPEC.settle, f"offer {3000 / 230:g}"),
        (CONTACTS_OPEN + SPEC.settle, "closed"),
    ]
    assert h.statuses(1)[-1] == "Charging"
    assert not h.sent(msg.TransactionEnded)  # one transaction throughout
    assert len(h.sent(msg.TransactionStarted)) == 1


def test_an_ev_that_stays_in_c_gets_its_grace_and_the_relay_waits_for_the_open_contactor(
) -> None:
    h = charging()
    mark = len(h.timed)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 3000)], unit="W"))
    h.advance(5.9)
    assert h.contactor(1) and not phases_set(h)  # the grace: the EV may stop drawing
    h.advance(0.1)  # 6 s: the contactor is forced open
    assert not h.contactor(1) and not phases_set(h)
    h.advance(CONTACTS_OPEN)
    assert phases_set(h) == [1]
    assert timeline(h, mark)[:3] == [(0.0, "offer 0"), (6.0, "open"),
                                     (6.0 + CONTACTS_OPEN, "phases 1")]


def test_a_higher_limit_switches_back_only_after_the_minimum_interval() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 3000)], unit="W"))
    h.pilot("B")
    h.advance(CONTACTS_OPEN + SPEC.settle)
    h.pilot("C")
    h.feed(ev.MeterSampled(1, MeterReading(1000, 3000, (230, 230, 230), ONE)))
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 11000)], unit="W"))
    connector = h.station.connectors[1]
    assert not connector.switching_phases and connector.limit_amps == 16  # 11 kW on 1 phase
    assert h.timers["phase_wait:1"] == SPEC.min_interval
    h.advance(SPEC.min_interval - h.mono - 0.5)
    assert phases_set(h) == [1] and h.contactor(1)
    h.advance(0.5)
    assert connector.switching_phases and connector.offered == 0  # the EV is paused ...
    h.pilot("B")
    h.advance(CONTACTS_OPEN + SPEC.settle)
    assert phases_set(h) == [1, 3] and connector.active_phases == 3
    assert not h.sent(msg.TransactionEnded)


def test_numberphases_of_the_period_in_force_selects_the_phases() -> None:
    h = charging()
    schedule = ChargingSchedule("A", (SchedulePeriod(0, 16, number_phases=1),))
    set_profile(h, ChargingProfile(1, 1, 0, "TxDefaultProfile", "Absolute", schedule))
    h.pilot("B")
    h.advance(CONTACTS_OPEN + SPEC.settle)
    assert phases_set(h) == [1]


def test_a_local_request_wins_and_clearing_it_returns_to_the_default() -> None:
    h = charging()
    h.feed(ev.LocalPhasesSet(1, 1, "hems"))
    h.pilot("B")
    h.advance(CONTACTS_OPEN + SPEC.settle)
    assert phases_set(h) == [1]
    h.feed(ev.LocalPhasesSet(1, None, "hems"))
    assert h.timers.get("phase_wait:1") is not None  # within the minimum interval
    h.advance(SPEC.min_interval)
    h.advance(CONTACTS_OPEN + SPEC.settle)
    assert phases_set(h) == [1, 3]


def test_a_local_request_is_saved_and_survives_a_restart() -> None:
    """The request is saved with the local limit, set or cleared; after a restart (the relay
    back at its default) the kept request switches the relay again, in the same sequence."""
    h = CoreHarness(phase_switch=SPEC)
    h.boot()
    h.feed(ev.LocalPhasesSet(1, 3, "hems"))
    h.feed(ev.LocalPhasesSet(1, None, "hems"))
    h.feed(ev.LocalPhasesSet(1, 1, "hems"))
    h.feed(ev.LocalLimitSet(1, 10, "hems"))
    saves = [e for e in h.effects if isinstance(e, fx.SaveLocalLimits)]
    assert saves == [fx.SaveLocalLimits(1, LocalLimits(None, (3, "hems"))),
                     fx.SaveLocalLimits(1, LocalLimits()),
                     fx.SaveLocalLimits(1, LocalLimits(None, (1, "hems"))),
                     fx.SaveLocalLimits(1, LocalLimits((10.0, "hems"), (1, "hems")))]
    again = CoreHarness(phase_switch=SPEC)
    again.station.restore_local_limits({1: saves[-1].limits})
    again.boot()
    again.advance(CONTACTS_OPEN + SPEC.settle)
    connector = again.station.connectors[1]
    assert phases_set(again) == [1] and connector.active_phases == 1
    assert connector.phase_request == (1, "hems") and connector.limit_amps == 10
    without = CoreHarness()  # the relay is gone from the configuration
    without.station.restore_local_limits({1: saves[-1].limits})
    without.boot()
    assert without.station.connectors[1].phase_request is None


def test_without_a_relay_a_low_watt_limit_pauses() -> None:
    h = charging(spec=None)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 3000)], unit="W"))
    h.advance(60)
    assert not phases_set(h) and h.statuses(1)[-1] == "SuspendedEVSE"
    assert h.station.connectors[1].offered == 0


def test_below_one_phase_minimum_it_pauses_and_the_relay_stays() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 1000)], unit="W"))
    h.advance(60)
    assert not phases_set(h) and h.statuses(1)[-1] == "SuspendedEVSE"


def test_an_ev_drawing_on_one_phase_of_three_is_left_on_three() -> None:
    h = charging()
    h.feed(ev.MeterSampled(1, MeterReading(1000, 2000, (230, 230, 230), ONE)))
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 3000)], unit="W"))
    h.advance(60)
    assert not phases_set(h) and h.contactor(1)


def test_never_under_load_over_random_sequences() -> None:
    """Whatever happens, the relay moves only with the contactor commanded open for at least
    CONTACTS_OPEN s and the offer at 0, and neither closes while a switch is under way."""
    for seed in range(60):
        rng = random.Random(seed)
        h = charging()
        for step in range(40):
            choice = rng.randrange(6)
            if choice == 0:
                watts = rng.choice([0, 1000, 2000, 3000, 4000, 5000, 11000])
                set_profile(h, profile(1, "TxDefaultProfile", [(0, watts)], unit="W",
                                       stack=0))
            elif choice == 1:
                h.pilot(rng.choice("BC"))
            elif choice == 2:
                h.feed(ev.LocalPhasesSet(1, rng.choice([1, 3, None]), "t"))
            elif choice == 3:
                currents = rng.choice([THREE, ONE, (0.0, 0.0, 0.0)])
                h.feed(ev.MeterSampled(1, MeterReading(1000, 0, (230, 230, 230), currents)))
            else:
                h.advance(rng.choice([0.2, 1.0, 3.0, 7.0, 120.0, 400.0]))
            check_never_under_load(h, f"seed {seed} step {step}")


def check_never_under_load(h: CoreHarness, where: str) -> None:
    closed, offer, opened_at = True, 16.0, None
    switching_since: float | None = None
    for when, effect in h.timed:
        if switching_since is not None and when >= switching_since + SPEC.settle:
            switching_since = None  # settled: the offer may return
        if isinstance(effect, fx.SetContactor):
            closed = effect.closed
            opened_at = None if closed else when
            assert not (closed and switching_since is not None), where
        elif isinstance(effect, fx.SetOfferedCurrent):
            offer = effect.amps
            assert not (offer > 0 and switching_since is not None), where
        elif isinstance(effect, fx.SetPhases):
            assert not closed and offer == 0, where
            assert opened_at is not None and when - opened_at >= CONTACTS_OPEN, where
            switching_since = when  # the settle time follows
