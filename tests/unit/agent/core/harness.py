"""A driver for the core in unit tests: feeds events at a fake time and keeps every effect.

It answers nothing by itself; tests answer calls explicitly, so every path is visible.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.context import PhaseSwitchSpec
from agent.core.settings import Settings, core_keys
from agent.core.station import ConnectorConfig, IdSource, Station, StationConfig
from agent.core.types import AuthorizationInfo, AuthStatus, Now, RegistrationStatus
from hal.roles import MeterReading, PilotState

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class CoreHarness:
    def __init__(self, connectors: int = 1, free_vend: str | None = None,
                 phase_switch: PhaseSwitchSpec | None = None, **seed: Any) -> None:
        refs = itertools.count(1)
        txs = itertools.count(100)
        config = StationConfig(
            vendor="Test",
            model="Core",
            connectors=tuple(ConnectorConfig(i, 16.0, phase_switch=phase_switch)
                             for i in range(1, connectors + 1)),
            free_vend_id_tag=free_vend,
        )
        self.settings = Settings(core_keys(connectors, phase_switch is not None), seed)
        self.station = Station(
            config, self.settings, IdSource(lambda: f"m{next(refs)}", lambda: next(txs))
        )
        self.mono = 0.0
        self.wall_step = 0.0  # seconds the wall clock was stepped (NTP after boot)
        self.effects: list[fx.Effect] = []
        self.timers: dict[str, float] = {}
        self.energy_wh = {i: 1000.0 for i in range(1, connectors + 1)}
        self.answered: list[fx.Send] = []
        self.timed: list[tuple[float, fx.Effect]] = []  # each effect with the time it came
        self.closed_seen = 0

    @property
    def now(self) -> Now:
        return Now(self.mono, EPOCH + timedelta(seconds=self.mono + self.wall_step))

    def feed(self, event: ev.Event) -> list[fx.Effect]:
        out = self.station.handle(event, self.now)
        self.effects.extend(out)
        self.timed.extend((self.mono, effect) for effect in out)
        for effect in out:
            if isinstance(effect, fx.StartTimer):
                self.timers[effect.name] = self.mono + effect.delay
            elif isinstance(effect, fx.CancelTimer):
                self.timers.pop(effect.name, None)
        for effect in out:  # the runtime serves meter reads right away
            if isinstance(effect, fx.ReadMeter):
                cid = effect.connector_id
                self.feed(ev.MeterSampled(cid, MeterReading(self.energy_wh[cid], 0.0)))
        return out

    def advance(self, seconds: float) -> None:
        """Move time on, firing due timers in order."""
        end = self.mono + seconds
        while True:
            due = sorted((t, n) for n, t in self.timers.items() if t <= end)
            if not due:
                break
            when, name = due[0]
            self.mono = when
            del self.timers[name]
            self.feed(ev.TimerFired(name))
        self.mono = end

    # --- reading what happened ----------------------------------------------------------

    def sent(self, kind: type | None = None) -> list[fx.Send]:
        sends = [e for e in self.effects if isinstance(e, fx.Send)]
        return [s for s in sends if kind is None or isinstance(s.req, kind)]

    def last(self, kind: type) -> fx.Send:
        sends = self.sent(kind)
        assert sends, f"no {kind.__name__} sent"
        return sends[-1]

    def statuses(self, connector_id: int) -> list[str]:
        return [
            s.req.status.value
            for s in self.sent(msg.StatusChanged)
            if isinstance(s.req, msg.StatusChanged) and s.req.connector_id == connector_id
        ]

    def contactor(self, connector_id: int = 1) -> bool:
        commands = [
            e.closed for e in self.effects
            if isinstance(e, fx.SetContactor) and e.connector_id == connector_id
        ]
        return commands[-1] if commands else False

    # --- scripted steps ------------------------------------------------------------------

    def boot(self, interval: int = 300) -> None:
        self.feed(ev.Started())
        self.first_readings()
        self.feed(ev.LinkUp())
        boot = self.last(msg.RegistrationRequest)
        self.answer(boot, msg.RegistrationResult(RegistrationStatus.ACCEPTED, interval))

    def answer(self, send: fx.Send, conf: msg.InboundConf) -> list[fx.Effect]:
        return self.feed(ev.CallAnswered(send.ref, conf))

    def accept_authorize(self, parent: str | None = None) -> None:
        self.answer(self.last(msg.AuthorizationRequest),
                    msg.AuthorizationResult(AuthorizationInfo(AuthStatus.ACCEPTED, parent)))

    def accept_start(self, transaction_id: int = 1, parent: str | None = None) -> None:
        self.answer(self.last(msg.TransactionStarted),
                    msg.TransactionStartResult(AuthorizationInfo(AuthStatus.ACCEPTED, parent),
                                               transaction_id))

    def first_readings(self, state: str = "A") -> None:
        """Each pilot driver's first reading, as it reports it once started."""
        for cid in self.station.connectors:
            self.pilot(state, cid)

    def pilot(self, state: str, connector_id: int = 1) -> None:
        self.feed(ev.PilotChanged(connector_id, PilotState(state)))

    def card(self, id_tag: str) -> None:
        self.feed(ev.TokenPresented(id_tag))
