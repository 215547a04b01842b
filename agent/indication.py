"""What the indicator (LEDs, buzzer) shows, derived from the core after every event.

:class:`IndicatorFeed` is a runtime listener. Short signals come from the core's notices
(``accepted``, ``rejected``); the lasting indication is derived from the station's state,
in this order: a fault on any connector, a connector charging, the CSMS unreachable, idle.
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.station import Station
from agent.core.types import ConnectorStatus
from hal.roles import Indication, Indicator

_SIGNALS = {"accepted": Indication.ACCEPTED, "rejected": Indication.REJECTED}


def lasting_indication(station: Station) -> Indication:
    """The indication that holds until the station's state changes."""
    if any(connector.faulted for connector in station.connectors.values()):
        return Indication.FAULT
    if any(station.status(cid) is ConnectorStatus.CHARGING for cid in station.connectors):
        return Indication.CHARGING
    if not (station.registration.accepted and station.registration.link_up):
        return Indication.OFFLINE
    return Indication.IDLE


class IndicatorFeed:
    """Shows on ``indicator`` what ``station`` is doing; call it with every handled event."""

    def __init__(self, indicator: Indicator, station: Station) -> None:
        self._indicator = indicator
        self._station = station
        self._lasting: Indication | None = None

    def __call__(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        lasting = lasting_indication(self._station)
        if lasting is not self._lasting:  # first: a short signal then returns to it
            self._lasting = lasting
            self._indicator.show(lasting)
        for effect in effects:
            if isinstance(effect, fx.Notice) and effect.kind in _SIGNALS:
                self._indicator.show(_SIGNALS[effect.kind])
