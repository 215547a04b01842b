"""One connector's session lifecycle, as a ``transitions`` state machine.

This is the only module that touches ``transitions`` (an untyped library), so the rest of the
core sees a small typed surface. The machine knows where a session is; facts such as the pilot
state, faults and availability live beside it, and the OCPP status is derived from both in
:func:`agent.core.connector.status_of`.

::

    idle --plug--> plugged --authorize--> transaction --end--> finishing --unplug--> idle
     |                ^                     |  ^                                    ^
     +--authorize--> authorized --plug------+  +-- (unplug ends it, back to idle) --+
                      |
                      +--expire--> idle
"""

from __future__ import annotations

import enum

from transitions import Machine


class Phase(enum.StrEnum):
    IDLE = "idle"  # nothing plugged, nobody authorized
    PLUGGED = "plugged"  # EV connected, waiting for authorization
    AUTHORIZED = "authorized"  # authorized, waiting for the EV (ConnectionTimeOut runs)
    TRANSACTION = "transaction"  # a transaction is open
    FINISHING = "finishing"  # the transaction ended, the EV is still connected


_TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "plug", "source": Phase.IDLE, "dest": Phase.PLUGGED},
    {"trigger": "plug", "source": Phase.AUTHORIZED, "dest": Phase.TRANSACTION},
    {"trigger": "authorize", "source": Phase.IDLE, "dest": Phase.AUTHORIZED},
    {"trigger": "authorize", "source": Phase.PLUGGED, "dest": Phase.TRANSACTION},
    {"trigger": "expire", "source": Phase.AUTHORIZED, "dest": Phase.IDLE},
    {"trigger": "end", "source": Phase.TRANSACTION, "dest": Phase.FINISHING},
    {"trigger": "unplug", "source": [Phase.PLUGGED, Phase.TRANSACTION, Phase.FINISHING],
     "dest": Phase.IDLE},
    {"trigger": "reset", "source": list(Phase), "dest": Phase.IDLE},
]


class Lifecycle:
    """A connector's phase. :meth:`fire` returns False, changing nothing, for a trigger that
    does not apply in the current phase."""

    def __init__(self) -> None:
        self.state: str = Phase.IDLE.value
        self._machine = Machine(
            model=self,
            states=[phase.value for phase in Phase],
            transitions=[_as_values(t) for t in _TRANSITIONS],
            initial=Phase.IDLE.value,
            auto_transitions=False,
            queued=True,
        )

    @property
    def phase(self) -> Phase:
        return Phase(self.state)

    def can(self, trigger: str) -> bool:
        return trigger in self._machine.get_triggers(self.state)

    def fire(self, trigger: str) -> bool:
        if not self.can(trigger):
            return False
        self.trigger(trigger)  # type: ignore[attr-defined]  # added by transitions
        return True


def _as_values(transition: dict[str, object]) -> dict[str, object]:
    def value(item: object) -> object:
        if isinstance(item, list):
            return [value(i) for i in item]
        return item.value if isinstance(item, Phase) else item

    return {key: value(item) for key, item in transition.items()}
