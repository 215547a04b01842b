"""Edges of smart charging found in review: each test states what DESIGN.md (Safety) or
OCPP 1.6 requires (each failed before its fix, at 6e9d4e6)."""

from __future__ import annotations

from datetime import timedelta

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.outputs import OFFER_STOP_GRACE

from .harness import EPOCH
from .test_smart_charging import charging, profile, set_profile


def _offer_and_contactor(h) -> tuple[float, bool]:  # type: ignore[no-untyped-def]
    return h.station.connectors[1].offered, h.contactor(1)


def test_a_pause_after_a_quick_resume_still_gets_the_grace() -> None:
    """IEC 61851-1 Table A.6 seq. 10.2 (DESIGN.md Safety): when the offer goes to "no
    charging" and the EV stays in C, the contactor stays closed for the EV to stop drawing
    and is forced open only after 6 s. A pause resumed within the grace left the grace's
    state behind (reconcile short-circuited it while the contactor was wanted): the next
    pause, a minute later, opened the contactor under load at once."""
    h = charging()
    h.advance(10)
    h.feed(ev.LocalLimitSet(1, 0, "t"))     # pause at t=10, grace to t=16
    h.advance(1)
    h.feed(ev.LocalLimitSet(1, None, "t"))  # resume at t=11 (offer back at t=15)
    h.advance(60)
    assert _offer_and_contactor(h) == (16.0, True)
    h.feed(ev.LocalLimitSet(1, 0, "t"))     # pause again at t=71: the EV is still in C
    assert _offer_and_contactor(h) == (0.0, True), "opened under load without the grace"
    h.advance(OFFER_STOP_GRACE + 0.1)
    assert not h.contactor(1)


def test_a_profile_boundary_beyond_eight_days_still_gets_a_timer() -> None:
    """The limit follows a profile boundary without waiting for an unrelated event: a
    TxDefaultProfile valid from 9 days on must arm the schedule timer (at most at the
    horizon, to look again)."""
    h = charging()
    later = profile(7, "TxDefaultProfile", [(0, 8)], stack=3,
                    start=EPOCH + timedelta(days=9))
    assert set_profile(h, later) == "Accepted"
    assert "schedule" in h.timers, "no timer armed: the limit changes only on another event"


def test_a_huge_schedule_duration_does_not_break_every_event() -> None:
    """A SetChargingProfile whose duration (an unbounded JSON integer, OCPP 1.6 7.8) is far
    beyond year 9999 must be refused or tolerated, not raise in every later event (the
    profile is persisted: the agent would fail again after each restart)."""
    h = charging()
    huge = profile(9, "TxDefaultProfile", [(0, 10)], duration=10**12, kind="Absolute",
                   start=EPOCH)
    try:
        set_profile(h, huge)
        h.advance(1)
        h.feed(ev.LocalLimitSet(1, 10, "t"))
    except (OverflowError, ValueError) as error:
        raise AssertionError(f"the core raised on a huge duration: {error!r}") from error
    assert not any(isinstance(e, fx.SetContactor) and e.closed for e in h.effects[-3:])
