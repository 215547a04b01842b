"""1 <-> 3 phase switching through a relay that connects L2 and L3 (docs/smart-charging.md).

Which phases a connector should charge on, in this order: a local client's request
(:class:`agent.core.events.LocalPhasesSet`); else the numberPhases of the charging schedule
period in force (OCPP 1.6 section 7.13, ChargingSchedulePeriod); else, for a limit in W, the
**power rule**: below 6 A x 3 phases x U (4,140 W at 230 V) but at least 6 A x 1 phase x U
(1,380 W) the EV charges on one phase instead of pausing, from 6 A x 3 x U on three; else the
relay's configured default. An EV that draws on one phase only while three are connected is
left on three (switching would change nothing for it).

The switch is a safety sequence, one step per event, each step a fact or a timer:

1. ``pausing``: :attr:`Connector.switching_phases` is set, so the offer goes to "no charging"
   and :func:`agent.core.connector.contactor_wanted` says open (the contactor is decided in
   agent/core/outputs.py, as ever: the EV gets its IEC 61851-1 grace to stop drawing);
2. once the contactor is commanded open, ``opening``: the timer ``phases`` waits
   :data:`CONTACTS_OPEN` s for its contacts to have opened (a weld is PowerSwitchFailure and
   holds the relay where it is);
3. the relay moves (:class:`agent.core.effects.SetPhases`), ``settling``: the timer waits
   ``settle`` s (configured, 5 s by default) before the EV may draw again;
4. the switching fact is cleared: the offer returns and the contactor closes only as usual,
   when the EV asks. The transaction goes on throughout (SuspendedEVSE meanwhile).

The relay never moves with the contactor commanded closed, nor while the EV is offered
current. No two switches of a connector start less than ``min_interval`` s apart (configured,
5 min by default): the timer ``phase_wait`` brings the decision back once it has passed.

What the sequence rests on: evcc switches a charger's phases only with charging stopped
(its maintainers refuse switching under load: github.com/evcc-io/evcc discussions 4763), and
a 1p3p add-on for a Heidelberg wallbox sets the charging power to 0, waits until the EV no
longer draws, then disconnects and reconnects with the new phases after a pause of 2 s
(github.com/zivillian/heidelberg-1p3p README); a KEBA with a phase switch needs a pause after
the switch before charging resumes (github.com/evcc-io/evcc discussions 25991).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.connector import MIN_OFFER, Connector, drawn_phases
from agent.core.context import Context, PhaseSwitchSpec
from agent.core.lifecycle import Phase
from agent.core.types import ErrorCode

log = logging.getLogger(__name__)

CONTACTS_OPEN = 1.0  # s from "contactor open" to moving the phase relay: the contacts are open

ContactorClosed = Callable[[int], bool]


@dataclass
class _Switch:
    target: int
    step: str  # pausing | opening | settling


class PhaseSwitching:
    def __init__(self, ctx: Context, contactor_closed: ContactorClosed) -> None:
        self._ctx = ctx
        self._contactor_closed = contactor_closed
        self._specs: dict[int, PhaseSwitchSpec] = {
            c.connector_id: c.phase_switch for c in ctx.config.connectors
            if c.phase_switch is not None}
        self._switches: dict[int, _Switch] = {}
        self._last_start: dict[int, float] = {}  # connector -> mono of the last switch's start
        self._waiting: set[int] = set()  # the timer phase_wait is armed

    def on_local_request(self, event: ev.LocalPhasesSet) -> None:
        """Set or clear the local phase request, and save it (``SaveLocalLimits``): it
        survives a restart."""
        for connector in self._ctx.targets(event.connector_id):
            connector.phase_request = (None if event.phases is None
                                       else (event.phases, event.source))
            self._ctx.emit(fx.SaveLocalLimits(connector.connector_id, connector.local_requests))

    def reconcile(self) -> None:
        """Before the outputs: start a switch where one is wanted and allowed."""
        for cid, spec in self._specs.items():
            connector = self._ctx.connectors[cid]
            if cid in self._switches or self._ctx.shutting_down:
                continue
            target = wanted_phases(connector, spec)
            if target is None or target == connector.active_phases:
                continue
            last = self._last_start.get(cid)
            wait = 0.0 if last is None else last + spec.min_interval - self._ctx.now.mono
            if wait > 0:
                if cid not in self._waiting:
                    self._waiting.add(cid)
                    self._ctx.emit(fx.StartTimer(f"phase_wait:{cid}", wait))
                continue
            log.info("connector %s: switching from %s to %s phases", cid,
                     connector.active_phases, target)
            self._switches[cid] = _Switch(target, "pausing")
            self._last_start[cid] = self._ctx.now.mono
            connector.switching_phases = True

    def after_outputs(self) -> None:
        """After the outputs: a pausing switch whose contactor is now open waits for its
        contacts (timer ``phases``)."""
        for cid, switch in self._switches.items():
            if switch.step == "pausing" and not self._contactor_closed(cid):
                switch.step = "opening"
                self._ctx.emit(fx.StartTimer(f"phases:{cid}", CONTACTS_OPEN))

    def on_step_timer(self, arg: str) -> None:
        cid = int(arg)
        switch = self._switches.get(cid)
        if switch is None:
            return
        connector = self._ctx.connectors[cid]
        if switch.step == "opening":
            welded = ErrorCode.POWER_SWITCH_FAILURE.value in connector.faults
            if self._contactor_closed(cid) or welded:
                # Never under load: wait until the contactor is open and sound.
                self._ctx.emit(fx.StartTimer(f"phases:{cid}", CONTACTS_OPEN))
                return
            switch.step = "settling"
            connector.active_phases = switch.target
            self._ctx.emit(fx.SetPhases(cid, switch.target))
            self._ctx.emit(fx.StartTimer(f"phases:{cid}", self._specs[cid].settle))
        elif switch.step == "settling":
            del self._switches[cid]
            connector.switching_phases = False
            log.info("connector %s: now on %s phases", cid, connector.active_phases)

    def on_wait_timer(self, arg: str) -> None:
        """The minimum interval has passed: the reconcile after this event decides again."""
        self._waiting.discard(int(arg))


def wanted_phases(connector: Connector, spec: PhaseSwitchSpec) -> int | None:
    """The phases the connector should charge on now; None: leave the relay as it is."""
    if connector.phase_request is not None:
        return connector.phase_request[0]
    tx = connector.transaction
    if connector.phase is not Phase.TRANSACTION or tx is None or tx.stopping is not None:
        return None  # only a running transaction moves the relay (or a local request)
    if connector.limit_phases in (1, 3):
        return connector.limit_phases
    if connector.limit_watts is not None:
        return _by_power(connector, connector.limit_watts)
    return spec.default


def _by_power(connector: Connector, watts: float) -> int | None:
    """The power rule: one phase where three cannot be offered 6 A but one can."""
    three, one = MIN_OFFER * 3 * connector.voltage, MIN_OFFER * connector.voltage
    if watts >= three:
        return 3
    if watts < one:
        return None  # paused on either: no reason to move the relay
    if connector.active_phases == 3 and drawn_phases(connector) == 1:
        return 3  # the EV charges on one phase anyway
    return 1
