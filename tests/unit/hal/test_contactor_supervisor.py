"""Weld and stuck-open detection from the auxiliary contact, with a settle time."""

from __future__ import annotations

from hal.contactor_supervisor import STUCK_OPEN, WELDED, ContactorSupervisor


def test_agreement_is_never_a_fault() -> None:
    s = ContactorSupervisor(settle=0.5)
    for t in range(10):
        assert s.check(t % 2 == 0, t % 2 == 0, float(t)) is False
    assert s.verdict is None


def test_a_contact_that_stays_closed_after_opening_is_welded_after_the_settle_time() -> None:
    s = ContactorSupervisor(settle=0.5)
    assert s.check(False, True, 0.0) is False
    assert s.check(False, True, 0.4) is False
    assert s.check(False, True, 0.5) == WELDED
    assert s.check(False, True, 5.0) is False, "reported once"
    assert s.check(False, False, 6.0) is None, "cleared when the contact opens"


def test_a_contact_that_does_not_follow_a_close_is_stuck_open() -> None:
    s = ContactorSupervisor(settle=0.5)
    s.check(True, False, 0.0)
    assert s.check(True, False, 1.0) == STUCK_OPEN


def test_a_short_transition_is_not_a_fault() -> None:
    s = ContactorSupervisor(settle=0.5)
    s.check(True, False, 0.0)
    assert s.check(True, True, 0.03) is False
    assert s.verdict is None


def test_no_feedback_input_means_no_verdict() -> None:
    s = ContactorSupervisor()
    assert s.check(True, None, 10.0) is False
