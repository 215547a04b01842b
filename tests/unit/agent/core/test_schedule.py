"""The composite schedule (agent/core/schedule.py): the OCTT cases' arithmetic, and a property
test against an independent brute-force reference evaluated second by second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.schedule import (
    ChargingProfile,
    ChargingSchedule,
    CompositePeriod,
    Electrical,
    SchedulePeriod,
    composite,
    limit_at,
    next_change,
)

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
E = Electrical(230.0)


def profile(pid: int, purpose: str, periods: list[tuple[int, float]], *, stack: int = 0,
            connector: int = 1, duration: int | None = None, kind: str = "Absolute",
            start: datetime | None = T0, unit: str = "A", recurrency: str | None = None,
            tx: int | None = None) -> ChargingProfile:
    schedule = ChargingSchedule(unit, tuple(SchedulePeriod(s, lim) for s, lim in periods),
                                duration, start)
    return ChargingProfile(pid, connector, stack, purpose, kind, schedule, recurrency,
                           transaction_id=tx)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_tc_066_three_profiles() -> None:
    x = 5  # the TxProfile arrived 5 s before the composite's start
    stack = [
        profile(1, "ChargePointMaxProfile", [(0, 10)], connector=0, duration=86400),
        profile(2, "TxDefaultProfile", [(0, 6), (60, 10), (120, 8), (180, 15), (260, 8)],
                duration=300, start=at(-x - 3)),
        profile(3, "TxProfile", [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)],
                duration=260, start=at(-x), tx=1),
    ]
    periods = composite(stack, T0, 400, None, "A", E, ceiling=32)
    assert periods == (CompositePeriod(0, 8), CompositePeriod(50 - x, 10),
                       CompositePeriod(200 - x, 6), CompositePeriod(240 - x, 10))
    in_watts = composite(stack, T0, 400, None, "W", Electrical(230.0, 3), ceiling=1e9)
    assert [p.limit for p in in_watts] == [8 * 690, 10 * 690, 6 * 690, 10 * 690]


def test_tc_072_stacking() -> None:
    stack = [profile(1, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)], duration=400),
             profile(2, "TxDefaultProfile", [(0, 7), (100, 9)], stack=1, duration=150)]
    assert composite(stack, T0, 350, None, "A", E, 1e9) == (
        CompositePeriod(0, 7), CompositePeriod(100, 9), CompositePeriod(150, 8),
        CompositePeriod(200, 10))


def test_no_profile_leaves_the_ceiling() -> None:
    assert composite([], T0, 60, None, "A", E, ceiling=16) == (CompositePeriod(0, 16),)
    assert limit_at([], T0, None, "A", E) is None


def test_relative_profile_starts_with_the_transaction() -> None:
    relative = profile(1, "TxDefaultProfile", [(0, 6), (60, 12)], kind="Relative", start=None)
    assert limit_at([relative], at(30), at(0), "A", E).value == 6  # type: ignore[union-attr]
    assert limit_at([relative], at(30), at(-40), "A", E).value == 12  # type: ignore[union-attr]
    assert limit_at([relative], at(30), None, "A", E) is None


def test_daily_profile_repeats() -> None:
    daily = profile(1, "TxDefaultProfile", [(0, 6), (3600, 16)], kind="Recurring",
                    recurrency="Daily", start=at(-10 * 86400))
    assert limit_at([daily], at(1800), None, "A", E).value == 6  # type: ignore[union-attr]
    assert limit_at([daily], at(86400 + 4000), None, "A", E).value == 16  # type: ignore[union-attr]
    assert next_change([daily], at(1800), None) == at(3600)
    assert next_change([daily], at(4000), None) == at(86400)


def test_watts_follow_the_phases_drawn() -> None:
    watts = profile(1, "TxDefaultProfile", [(0, 6900)], unit="W")
    assert limit_at([watts], T0, None, "A", Electrical(230, 1)).value == pytest.approx(30)  # type: ignore[union-attr]
    assert limit_at([watts], T0, None, "A", Electrical(230, 3)).value == pytest.approx(10)  # type: ignore[union-attr]


# --- the property: composite == a brute-force reference, second by second ---------------

WINDOW = 600


def reference_limit(stack: list[ChargingProfile], t: datetime, tx_start: datetime | None,
                    unit: str, electrical: Electrical) -> float | None:
    """Written apart from the module: each rule of OCPP 1.6 3.13 applied literally."""
    def in_force(p: ChargingProfile) -> tuple[float, int | None] | None:
        if (p.valid_from and t < p.valid_from) or (p.valid_to and t >= p.valid_to):
            return None
        if p.kind == "Relative":
            start = tx_start
        elif p.kind == "Absolute":
            start = p.schedule.start_schedule
        else:
            assert p.schedule.start_schedule is not None
            step = timedelta(days=1 if p.recurrency == "Daily" else 7)
            start = p.schedule.start_schedule
            while start + step <= t:
                start += step
        if start is None or t < start:
            return None
        offset = (t - start).total_seconds()
        if p.schedule.duration is not None and offset >= p.schedule.duration:
            return None
        begun = sorted((q for q in p.schedule.periods if q.start_period <= offset),
                       key=lambda q: q.start_period)
        if not begun:
            return None
        limit, phases = begun[-1].limit, begun[-1].number_phases
        if p.schedule.unit != unit:
            factor = electrical.voltage * (electrical.phases or phases or 3)
            limit = limit * factor if unit == "W" else limit / factor
        return limit, phases

    def best(purpose: str) -> float | None:
        candidates = sorted(((p.stack_level, p.connector_id != 0, in_force(p)) for p in stack
                             if p.purpose == purpose), key=lambda c: (c[0], c[1]))
        live = [c[2][0] for c in candidates if c[2] is not None]
        return live[-1] if live else None

    has_tx = any(p.purpose == "TxProfile" for p in stack)
    values = [v for v in (best("TxProfile" if has_tx else "TxDefaultProfile"),
                          best("ChargePointMaxProfile")) if v is not None]
    return min(values) if values else None


seconds = st.integers(-WINDOW, 2 * WINDOW)


@st.composite
def profiles(draw: st.DrawFn, pid: int) -> ChargingProfile:
    purpose = draw(st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]))
    kind = draw(st.sampled_from(["Absolute", "Relative", "Recurring"]))
    recurrency = draw(st.sampled_from(["Daily", "Weekly"])) if kind == "Recurring" else None
    starts = sorted(set(draw(st.lists(st.integers(0, WINDOW), min_size=1, max_size=5))))
    starts[0] = draw(st.sampled_from([0, starts[0]]))
    unit = draw(st.sampled_from(["A", "W"]))
    periods = tuple(SchedulePeriod(s, draw(st.integers(0, 32)) * (690 if unit == "W" else 1),
                                   draw(st.sampled_from([None, 1, 3]))) for s in starts)
    start: datetime | None = None
    if kind == "Absolute":
        start = at(draw(seconds))
    elif kind == "Recurring":
        days = 1 if recurrency == "Daily" else 7
        start = at(draw(seconds) - days * 86400 * draw(st.integers(0, 3)))
    valid_from = draw(st.none() | seconds.map(at))
    valid_to = draw(st.none() | seconds.map(at))
    schedule = ChargingSchedule(unit, periods, draw(st.none() | st.integers(1, 2 * WINDOW)),
                                start)
    return ChargingProfile(pid, draw(st.sampled_from([0, 1])), draw(st.integers(0, 3)),
                           purpose, kind, schedule, recurrency, valid_from, valid_to)


def installable(stack: tuple[ChargingProfile, ...]) -> list[ChargingProfile]:
    """As installed: one profile per purpose, stack level and connector (a newer replaces)."""
    kept = {(p.purpose, p.stack_level, p.connector_id): p for p in stack}
    return list(kept.values())


stacks = st.integers(0, 6).flatmap(
    lambda n: st.tuples(*(profiles(i) for i in range(n))).map(installable))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks, st.none() | seconds.map(at), st.sampled_from(["A", "W"]),
       st.sampled_from([None, 1, 3]), st.sampled_from([16.0, 32.0, 1e6]))
def test_composite_matches_the_reference(stack: list[ChargingProfile], tx_start: datetime | None,
                                         unit: str, phases: int | None,
                                         ceiling: float) -> None:
    electrical = Electrical(230.0, phases)
    cap = electrical.convert(ceiling, "A", unit, None)
    periods = composite(stack, T0, WINDOW, tx_start, unit, electrical, cap)
    for second in range(WINDOW):
        expected = reference_limit(stack, at(second), tx_start, unit, electrical)
        expected = cap if expected is None else min(expected, cap)
        current = [p for p in periods if p.start_period <= second]
        got = current[-1].limit if current else None
        assert got == pytest.approx(expected), f"second {second}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks, st.none() | seconds.map(at), st.integers(0, WINDOW))
def test_nothing_changes_before_next_change(stack: list[ChargingProfile],
                                            tx_start: datetime | None, t: int) -> None:
    change = next_change(stack, at(t), tx_start)
    until = WINDOW * 3 if change is None else int((change - T0).total_seconds())
    assert change is None or change > at(t)
    first = reference_limit(stack, at(t), tx_start, "A", E)
    for second in range(t, min(until, WINDOW * 3)):
        assert reference_limit(stack, at(second), tx_start, "A", E) == first
