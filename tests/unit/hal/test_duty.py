"""IEC 61851-1 duty <-> current and the 5 s pace of offer changes."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.duty import (
    MAX_CURRENT_A,
    PERIOD_NS,
    OfferPacer,
    advertised_current,
    current_for_duty_percent,
    duty_ns_for_current,
    duty_percent_for_current,
    normalised_offer,
)
from hal.errors import ConfigurationError

# hardware.md §1.2, "worked values [ran]", rounded as printed there.
WORKED = [(6, 10.0), (10, 16.67), (16, 26.67), (20, 33.33), (32, 53.33), (51, 85.0),
          (63, 89.2), (80, 96.0)]


@pytest.mark.parametrize(("amps", "percent"), WORKED)
def test_worked_values(amps: int, percent: float) -> None:
    assert float(duty_percent_for_current(amps)) == pytest.approx(percent, abs=0.005)
    assert duty_ns_for_current(amps) == int(duty_percent_for_current(amps) * PERIOD_NS / 100)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [(0, 0), (2.9, 0), (5, 0), (7.5, 0), (8, 6), (9.99, 6), (10, 6), (16, 9.6), (50, 30),
     (85, 51), (85.5, 53.75), (90, 65), (96, 80), (96.5, 80), (97, 80), (97.5, 0), (100, 0)],
)
def test_current_for_duty_follows_the_table(duty: float, amps: float) -> None:
    assert float(current_for_duty_percent(duty)) == pytest.approx(amps)


def test_rounds_down_to_whole_nanoseconds() -> None:
    assert duty_ns_for_current(16) == 266_666  # 26.6666..% -> never 26.6667 %
    assert advertised_current(duty_ns_for_current(16)) < 16
    assert duty_ns_for_current(6) == 100_000  # exact values stay exact
    assert advertised_current(100_000) == 6.0


@pytest.mark.parametrize("amps", [0, 3, 5.99])
def test_below_6_amps_is_no_charging(amps: float) -> None:
    assert normalised_offer(amps) == 0
    assert duty_percent_for_current(amps) == 100
    assert duty_ns_for_current(amps) == PERIOD_NS
    assert advertised_current(PERIOD_NS) == 0


def test_above_80_amps_is_clamped() -> None:
    assert normalised_offer(125) == MAX_CURRENT_A
    assert duty_percent_for_current(125) == 96


@pytest.mark.parametrize("amps", [-1, float("nan")])
def test_nonsense_currents_are_refused(amps: float) -> None:
    with pytest.raises(ConfigurationError):
        duty_ns_for_current(amps)


amps_strategy = st.floats(min_value=0, max_value=200, allow_nan=False)
periods = st.sampled_from([PERIOD_NS, 999_999, 1_000_001, 10_000, 1_020_408])


@given(amps_strategy, periods)
def test_never_advertises_more_than_asked(amps: float, period: int) -> None:
    advertised = advertised_current(duty_ns_for_current(amps, period), period)
    assert advertised <= amps
    assert Fraction(advertised) <= Fraction(normalised_offer(amps))


@given(st.floats(min_value=6, max_value=80, allow_nan=False))
def test_advertises_within_a_nanosecond_of_the_ask(amps: float) -> None:
    # One ns of 1 ms is 0.0001 % duty: at most 0.00025 A below the ask (the 2.5 A/% band).
    # Between 51 and 52.5 A the table has a step; the inverse lands below it, on 51 A.
    advertised = advertised_current(duty_ns_for_current(amps))
    assert advertised >= min(amps, 51) - 0.00025 or 51 < amps <= 52.5


@given(amps_strategy, amps_strategy)
def test_more_current_never_gives_less_duty(a: float, b: float) -> None:
    low, high = sorted((a, b))
    if normalised_offer(low) > 0:
        assert duty_ns_for_current(low) <= duty_ns_for_current(high)


# -- the pacer ---------------------------------------------------------------------------------


def test_first_offer_and_stop_are_immediate() -> None:
    pacer = OfferPacer()
    assert pacer.request(16, now=0.0) == 16
    assert pacer.request(0, now=0.1) == 0
    assert pacer.request(10, now=0.2) == 10  # starting again is not a change of the PWM


def test_changes_wait_five_seconds_and_the_latest_wins() -> None:
    pacer = OfferPacer()
    pacer.request(16, now=0.0)
    assert pacer.request(10, now=1.0) is None
    assert pacer.request(12, now=2.0) is None
    assert (pacer.pending, pacer.due_at) == (12, 5.0)
    assert pacer.poll(4.99) is None
    assert pacer.poll(5.0) == 12
    assert pacer.applied == 12 and pacer.pending is None
    assert pacer.request(20, now=9.0) is None
    assert pacer.poll(10.0) == 20


def test_asking_for_what_is_in_force_drops_the_waiting_change() -> None:
    pacer = OfferPacer()
    pacer.request(16, now=0.0)
    pacer.request(10, now=1.0)
    assert pacer.request(16, now=2.0) is None
    assert pacer.pending is None and pacer.poll(100.0) is None


def test_a_stop_overrides_a_waiting_change() -> None:
    pacer = OfferPacer()
    pacer.request(16, now=0.0)
    pacer.request(10, now=1.0)
    assert pacer.request(2, now=1.5) == 0  # below 6 A: no charging, at once
    assert pacer.pending is None


def test_reset_forgets_the_offer_in_force() -> None:
    pacer = OfferPacer()
    pacer.request(16, now=0.0)
    pacer.request(10, now=1.0)
    pacer.reset()  # e.g. the PWM refused the write
    assert (pacer.applied, pacer.pending) == (0, None)
    assert pacer.request(16, now=1.5) == 16


events = st.lists(
    st.tuples(st.floats(min_value=0, max_value=10, allow_nan=False),
              st.sampled_from([0.0, 6.0, 10.0, 16.0, 32.0]), st.booleans()),
    max_size=40,
)


@given(events)
def test_running_pwm_changes_at_most_once_per_interval(script: list[tuple[float, float, bool]]
                                                       ) -> None:
    pacer = OfferPacer(interval=5.0)
    now = 0.0
    last_change: float | None = None
    applied = 0.0
    for dt, amps, is_poll in script:
        now += dt
        offer = pacer.poll(now) if is_poll else pacer.request(amps, now)
        if offer is None:
            continue
        if offer != 0 and applied != 0:  # a change of a running PWM
            assert last_change is None or now - last_change >= 5.0
        last_change, applied = now, offer
        assert pacer.applied == applied
