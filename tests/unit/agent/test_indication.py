"""The indicator follows the core: short signals from notices, the lasting one from state."""

from __future__ import annotations

from agent.core import events as ev
from agent.core.types import ErrorCode
from agent.indication import IndicatorFeed, lasting_indication
from hal.roles import Indication

from .core.harness import CoreHarness


class FakeIndicator:
    def __init__(self) -> None:
        self.shown: list[Indication] = []

    def show(self, kind: Indication) -> None:
        self.shown.append(Indication(kind))

    def close(self) -> None:
        pass


def fed(h: CoreHarness, indicator: FakeIndicator) -> IndicatorFeed:
    feed = IndicatorFeed(indicator, h.station)
    original = h.feed

    def feed_and_show(event: ev.Event) -> list:  # type: ignore[type-arg]
        effects = original(event)
        feed(event, effects)
        return effects

    h.feed = feed_and_show  # type: ignore[method-assign]
    return feed


def test_offline_until_registered_then_idle() -> None:
    h = CoreHarness()
    assert lasting_indication(h.station) is Indication.OFFLINE
    h.boot()
    assert lasting_indication(h.station) is Indication.IDLE


def test_a_session_shows_accepted_then_charging_and_a_fault_wins() -> None:
    h = CoreHarness()
    indicator = FakeIndicator()
    fed(h, indicator)
    h.boot()
    h.pilot("B")
    h.card("AAAA0001")
    h.accept_authorize()
    assert Indication.ACCEPTED in indicator.shown
    h.accept_start()
    h.pilot("C")
    assert indicator.shown[-1] is Indication.CHARGING
    h.feed(ev.DeviceFault(1, ErrorCode.POWER_METER_FAILURE.value, True))
    assert indicator.shown[-1] is Indication.FAULT
    h.feed(ev.LinkDown())
    assert indicator.shown[-1] is Indication.FAULT


def test_a_rejected_card_is_signalled() -> None:
    h = CoreHarness()
    indicator = FakeIndicator()
    fed(h, indicator)
    h.boot()
    h.feed(ev.LinkDown())
    assert indicator.shown[-1] is Indication.OFFLINE
    h.card("UNKNOWN1")
    assert indicator.shown[-1] is Indication.REJECTED
