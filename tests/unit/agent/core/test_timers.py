"""Every timer path in the core, driven by advancing the harness clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.metering import seconds_to_next_aligned
from agent.core.types import AuthorizationInfo, AuthStatus, RegistrationStatus

from .harness import CoreHarness


def test_heartbeat_follows_the_boot_interval_and_a_changed_key() -> None:
    h = CoreHarness()
    h.boot(interval=30)
    h.advance(90)
    assert len(h.sent(msg.HeartbeatRequest)) == 3
    h.feed(ev.CsmsCommand(msg.CsmsChangeConfiguration("HeartbeatInterval", "10")))
    h.advance(30)
    assert len(h.sent(msg.HeartbeatRequest)) == 6


def test_heartbeat_interval_zero_sends_none() -> None:
    h = CoreHarness()
    h.boot(interval=0)
    h.feed(ev.CsmsCommand(msg.CsmsChangeConfiguration("HeartbeatInterval", "0")))
    h.advance(3600)
    assert not h.sent(msg.HeartbeatRequest)


def test_a_failed_boot_is_retried() -> None:
    h = CoreHarness()
    h.feed(ev.Started())
    h.feed(ev.LinkUp())
    h.feed(ev.CallFailed(h.last(msg.RegistrationRequest).ref, "timeout"))
    h.advance(29)
    assert len(h.sent(msg.RegistrationRequest)) == 1
    h.advance(1)
    assert len(h.sent(msg.RegistrationRequest)) == 2


def test_pending_boot_with_interval_zero_retries_after_the_default() -> None:
    h = CoreHarness()
    h.feed(ev.Started())
    h.feed(ev.LinkUp())
    h.answer(h.last(msg.RegistrationRequest),
             msg.RegistrationResult(RegistrationStatus.PENDING, 0))
    h.advance(60)
    assert len(h.sent(msg.RegistrationRequest)) == 2


def test_minimum_status_duration_reports_only_stable_statuses() -> None:
    h = CoreHarness(MinimumStatusDuration=5)
    h.boot()
    h.pilot("B")
    h.advance(2)
    h.pilot("A")  # back to Available before Preparing was stable: nothing to report
    h.advance(10)
    assert h.statuses(1) == ["Available"]
    h.pilot("B")
    h.advance(5)
    assert h.statuses(1) == ["Available", "Preparing"]


def test_clock_aligned_samples_land_on_interval_boundaries() -> None:
    h = CoreHarness(ClockAlignedDataInterval=900)
    h.boot()
    assert h.timers["aligned"] == pytest.approx(900)  # the harness starts at midnight
    h.advance(900)
    samples = [s.req for s in h.sent(msg.MeterValuesReported)]
    assert samples and all(isinstance(r, msg.MeterValuesReported) for r in samples)
    assert samples[0].samples[0].context == "Sample.Clock"  # type: ignore[union-attr]


@pytest.mark.parametrize(("now", "interval", "expected"), [
    (datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), 900, 900.0),
    (datetime(2026, 1, 1, 0, 14, 0, tzinfo=UTC), 900, 60.0),
    (datetime(2026, 1, 1, 23, 59, 30, tzinfo=UTC), 3600, 30.0),
])
def test_seconds_to_next_aligned(now: datetime, interval: int, expected: float) -> None:
    assert seconds_to_next_aligned(now, interval) == pytest.approx(expected)


def test_an_unanswered_authorize_falls_back_to_the_offline_rules() -> None:
    h = CoreHarness(LocalAuthorizeOffline=True)
    h.boot()
    h.pilot("B")
    h.card("CAFE0001")
    h.accept_authorize()  # cached as Accepted
    h.pilot("A")
    h.answer(h.last(msg.TransactionStarted), msg.TransactionStartResult(
        AuthorizationInfo(AuthStatus.ACCEPTED), 1))
    h.pilot("B")
    h.advance(2)  # the reader's repeat window
    h.card("CAFE0001")
    assert len(h.sent(msg.AuthorizationRequest)) == 2
    h.advance(14)
    assert len(h.sent(msg.TransactionStarted)) == 1
    h.advance(1)  # authorize_timeout (15 s): the cache decides
    assert len(h.sent(msg.TransactionStarted)) == 2


def test_an_unanswered_authorize_of_an_unknown_tag_is_refused() -> None:
    h = CoreHarness()
    h.boot()
    h.pilot("B")
    h.card("UNKNOWN1")
    h.advance(20)
    assert not h.sent(msg.TransactionStarted)
    late = h.last(msg.AuthorizationRequest)
    h.answer(late, msg.AuthorizationResult(AuthorizationInfo(AuthStatus.ACCEPTED)))
    assert not h.sent(msg.TransactionStarted), "a late answer is ignored"
