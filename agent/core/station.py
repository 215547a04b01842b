"""The charging station: the core's one entry point, a thin coordinator of its features.

``Station.handle(event, now)`` takes one event and returns the effects to apply, in order. It
reads no clock (``now`` is given), does no I/O, and asks for ids through ``ids``.

Each concern is a feature component that owns its state (docs/architecture.md has the map):
registration, availability, authorization, transactions, metering, the pilot, faults, remote
control, configuration. The station routes each event, timer, answer and command to the
component it concerns, then reconciles: :class:`agent.core.outputs.Outputs` derives every
contactor, offer and lock command, and :class:`agent.core.status.StatusReport` every status,
from the connectors' state, and only what changed is emitted. No component can forget to
open a contactor or report a status, because none does either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.authorization import AuthorizationCache, Authorizer, LocalList
from agent.core.availability import Availability
from agent.core.configuration import Configuration
from agent.core.connector import Connector
from agent.core.context import (
    ConnectorConfig,
    Context,
    IdSource,
    Pending,
    RegistrationState,
    StationConfig,
)
from agent.core.faults import Faults
from agent.core.metering import Metering
from agent.core.outputs import Outputs
from agent.core.phases import PhaseSwitching
from agent.core.pilot import Pilot
from agent.core.registration import Registration
from agent.core.remote import RemoteControl
from agent.core.reservations import Reservations
from agent.core.schedule import ChargingProfile
from agent.core.settings import Settings
from agent.core.smart_charging import SmartCharging
from agent.core.status import StatusReport
from agent.core.transactions import Transactions
from agent.core.types import (
    AuthorizationInfo,
    ConnectorStatus,
    LocalLimits,
    Now,
    Reservation,
)

log = logging.getLogger(__name__)

__all__ = ["ConnectorConfig", "IdSource", "Station", "StationConfig"]

Answered = Callable[[str, Pending, msg.InboundConf], None]
Failed = Callable[[Pending, str], None]


class Station:
    def __init__(self, config: StationConfig, settings: Settings, ids: IdSource) -> None:
        self.config = config
        self.settings = settings
        ctx = self._ctx = Context(config, settings, ids)
        self.faults = Faults(ctx)
        self.outputs = Outputs(ctx)
        self.status_report = StatusReport(ctx, self.outputs, self.faults)
        self.availability = Availability(ctx)
        self.reservations = Reservations(ctx)
        self.smart_charging = SmartCharging(ctx)
        self.phase_switching = PhaseSwitching(ctx, self.outputs.contactor_closed)
        self.transactions = Transactions(ctx, self.availability, self._remember,
                                         self.reservations.used)
        self.authorizer = Authorizer(ctx, self.transactions, self.availability,
                                     self.reservations)
        self.metering = Metering(ctx, self.transactions)
        self.registrar = Registration(ctx, self.status_report, self.metering.arm_aligned)
        self.pilot = Pilot(ctx, self.faults, self.authorizer, self.transactions,
                           self.availability)
        self.remote = RemoteControl(ctx, self.authorizer, self.transactions, self.outputs,
                                    self.registrar, self.status_report, self.reservations,
                                    self.smart_charging)
        self.configuration = Configuration(ctx, {
            "HeartbeatInterval": self.registrar.on_interval_changed,
            "ClockAlignedDataInterval": self.metering.on_interval_changed,
        })
        self._events = self._event_routes()
        self._timers = self._timer_routes()
        self._commands = self._command_routes()
        self._answered, self._failed = self._answer_routes()
        self._limit_fault: str | None = None  # the last fault of the limit computation

    # --- what the rest of the agent reads --------------------------------------------------

    @property
    def connectors(self) -> dict[int, Connector]:
        return self._ctx.connectors

    @property
    def registration(self) -> RegistrationState:
        return self._ctx.registration

    @property
    def cache(self) -> AuthorizationCache:
        return self.authorizer.cache

    @property
    def local_list(self) -> LocalList:
        return self.authorizer.local_list

    def status(self, connector_id: int) -> ConnectorStatus:
        """The connector's OCPP status right now."""
        return self.status_report.of(connector_id)

    def restore_authorization(self, cache: list[tuple[str, AuthorizationInfo]],
                              list_version: int,
                              list_entries: list[tuple[str, AuthorizationInfo]]) -> None:
        """The cache and the local list kept across restarts; call before Started."""
        self.authorizer.restore(cache, list_version, list_entries)

    def restore_reservations(self, reservations: list[Reservation]) -> None:
        """Reservations kept across restarts; call before Started."""
        self.reservations.restore(reservations)

    def restore_charging_profiles(self, profiles: list[ChargingProfile]) -> None:
        """Charging profiles kept across restarts; call before Started."""
        self.smart_charging.restore(profiles)

    def restore_availability(self, operative: dict[int, bool]) -> None:
        """Availability kept across restarts (TC_013..016, TC_034); call before Started."""
        self.availability.restore(operative)

    def restore_local_limits(self, kept: dict[int, LocalLimits]) -> None:
        """Local limits and phase requests kept across restarts; call before Started, so the
        first reconcile puts them in force (``limit_source`` ``local:<source>``). A connector
        no longer configured, and a phase request for one without a phase switch, are left
        out."""
        for cid, limits in kept.items():
            connector = self.connectors.get(cid)
            if connector is not None:
                connector.local_limit = limits.limit
                connector.phase_request = limits.phase_request if connector.phase_switch else None

    # --- the entry point -------------------------------------------------------------------

    def handle(self, event: ev.Event, now: Now) -> list[fx.Effect]:
        """Apply one event; return the effects, to be applied in order."""
        self._ctx.begin(now)
        self._events[type(event)](event)
        self._reconcile_limits()
        self.phase_switching.reconcile()
        self.outputs.reconcile()
        self.phase_switching.after_outputs()
        self.status_report.reconcile()
        return self._ctx.effects()

    def _reconcile_limits(self) -> None:
        """A fault in the limit computation must not cost the event its other effects (the
        contactor decision, the status, the reply): the previous limits stay in force and
        the fault is logged once, until a reconcile succeeds again."""
        try:
            self.smart_charging.reconcile()
        except Exception as exc:  # any fault: the rest of the event goes on
            fault = f"{type(exc).__name__}: {exc}"
            if fault != self._limit_fault:
                log.exception("the limit computation failed; the previous limits stay")
            self._limit_fault = fault
        else:
            self._limit_fault = None

    def _event_routes(self) -> dict[type[Any], Callable[[Any], None]]:
        registrar = self.registrar
        return {
            ev.Started: self._on_started,
            ev.LinkUp: lambda _: registrar.on_link_up(),
            ev.LinkDown: lambda _: registrar.on_link_down(),
            ev.PilotChanged: self.pilot.on_pilot,
            ev.TokenPresented: self.authorizer.on_token,
            ev.MeterSampled: self.metering.on_reading,
            ev.MeterReadFailed: self.metering.on_read_failed,
            ev.DeviceFault: self.faults.on_fault,
            ev.LockMoved: self.outputs.on_lock_moved,
            ev.TimerFired: self._on_timer,
            ev.CallAnswered: self._on_answer,
            ev.CallFailed: self._on_call_failed,
            ev.CsmsCommand: self._on_command,
            ev.LocalListNotSaved: self.authorizer.on_list_not_saved,
            ev.ChargingProfilesNotSaved: self.smart_charging.on_not_saved,
            ev.ShutdownRequested: self._on_shutdown,
            ev.StartRequested: self.authorizer.on_start_requested,
            ev.StartWithdrawn: self.authorizer.on_start_withdrawn,
            ev.LocalLimitSet: self.smart_charging.on_local_limit,
            ev.LocalPhasesSet: self.phase_switching.on_local_request,
            ev.MaintenanceHold: lambda event: self.availability.hold(event.on),
        }

    def _on_started(self, event: ev.Started) -> None:
        self.outputs.on_started()
        self.reservations.on_started()
        self.smart_charging.on_started()
        self._ctx.emit(fx.OpenTransactionQueue(False))

    def _on_shutdown(self, event: ev.ShutdownRequested) -> None:
        self._ctx.shutting_down = True
        self.transactions.stop_all(event.reason)

    def _remember(self, id_tag: str, info: AuthorizationInfo) -> None:
        self.authorizer.remember(id_tag, info)

    # --- timers, answers, commands: each to the feature it concerns ------------------------

    def _timer_routes(self) -> dict[str, Callable[[str], None]]:
        return {
            "heartbeat": self.registrar.on_heartbeat_timer,
            "boot": self.registrar.on_boot_timer,
            "connection": self.authorizer.on_connection_timer,
            "authorize": self.authorizer.on_answer_timer,
            "sample": self.transactions.on_sample_timer,
            "ev_grace": self.transactions.on_ev_grace_timer,
            "aligned": self.metering.on_aligned_timer,
            "status": self.status_report.on_settled_timer,
            "lock": self.outputs.on_lock_retry,
            "offer_stop": self.outputs.on_offer_stop_timer,
            "reservation": self.reservations.on_expiry_timer,
            "schedule": self.smart_charging.on_schedule_timer,
            "offer": self.outputs.on_offer_timer,
            "phases": self.phase_switching.on_step_timer,
            "phase_wait": self.phase_switching.on_wait_timer,
        }

    def _on_timer(self, event: ev.TimerFired) -> None:
        kind, _, arg = event.name.partition(":")
        self._timers[kind](arg)

    def _answer_routes(self) -> tuple[dict[str, Answered], dict[str, Failed]]:
        """Answers and failures of our calls, by what the call was for (Pending.kind)."""
        answered: dict[str, Answered] = {
            "boot": self.registrar.on_answer,
            "authorize": self.authorizer.on_answer,
            "start": self.transactions.on_start_answer,
            "stop": self.transactions.on_end_answer,
        }
        failed: dict[str, Failed] = {
            "boot": self.registrar.on_failed,
            "authorize": self.authorizer.on_failed,
        }
        return answered, failed

    def _on_answer(self, event: ev.CallAnswered) -> None:
        pending = self._ctx.answered(event.ref)
        handler = self._answered.get(pending.kind) if pending is not None else None
        if pending is not None and handler is not None:
            handler(event.ref, pending, event.conf)

    def _on_call_failed(self, event: ev.CallFailed) -> None:
        pending = self._ctx.answered(event.ref)
        handler = self._failed.get(pending.kind) if pending is not None else None
        if pending is not None and handler is not None:
            handler(pending, event.reason)

    def _command_routes(self) -> dict[type[Any], Callable[[Any], msg.CsmsResponse]]:
        remote, authorizer = self.remote, self.authorizer
        return {
            msg.CsmsRemoteStart: remote.remote_start,
            msg.CsmsRemoteStop: self.transactions.remote_stop,
            msg.CsmsGetConfiguration: self.configuration.get,
            msg.CsmsChangeConfiguration: self.configuration.change,
            msg.CsmsChangeAvailability: self.availability.change,
            msg.CsmsReset: remote.reset,
            msg.CsmsUnlockConnector: remote.unlock,
            msg.CsmsTriggerMessage: remote.trigger,
            msg.CsmsClearCache: authorizer.clear_cache,
            msg.CsmsDataTransfer: remote.data_transfer,
            msg.CsmsSendLocalList: authorizer.send_local_list,
            msg.CsmsGetLocalListVersion: authorizer.local_list_version,
            msg.CsmsReserveNow: self.reservations.reserve,
            msg.CsmsCancelReservation: self.reservations.cancel,
            msg.CsmsSetChargingProfile: self.smart_charging.set_profile,
            msg.CsmsClearChargingProfile: self.smart_charging.clear,
            msg.CsmsGetCompositeSchedule: self.smart_charging.composite_schedule,
        }

    def _on_command(self, event: ev.CsmsCommand) -> None:
        self._ctx.emit(fx.Reply(self._commands[type(event.request)](event.request)))
