"""The charging station: the core's one entry point.

``Station.handle(event, now)`` takes one event and returns the effects to apply, in order.
It owns the connectors, registration, heartbeats, the routing of tokens and CSMS commands.
It reads no clock (``now`` is given), does no I/O, and asks for ids through ``ids``.

After every event, :meth:`Station._reconcile` derives each connector's contactor command,
offered current and status from its state and emits only what changed, so no handler can
forget to open a contactor or report a status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.authorization import AuthorizationCache, LocalList, local_decision
from agent.core.connector import (
    Authorization,
    Connector,
    Transaction,
    contactor_wanted,
    lock_wanted,
    offer_withdrawn,
    offered_current,
    status_of,
)
from agent.core.lifecycle import Phase
from agent.core.metering import meter_sample, seconds_to_next_aligned
from agent.core.settings import LOCAL_LIST_MAX, SEND_LOCAL_LIST_MAX, Settings, Value, render
from agent.core.types import (
    AuthStatus,
    ConnectorStatus,
    ErrorCode,
    IdTagInfo,
    Now,
    RegistrationStatus,
    RequestStatus,
    StopReason,
)
from hal.roles import MeterReading, PilotState

log = logging.getLogger(__name__)

BOOT_RETRY_DEFAULT = 60  # seconds, when the CSMS gives interval 0 for Pending/Rejected
BOOT_RETRY_AFTER_FAILURE = 30
EV_RESPONSE_GRACE = 5.0  # s an EV gets to answer the first offer before it counts as SuspendedEV
MAX_TRANSACTION_DATA = 500  # samples kept for StopTransaction.transactionData
WARNING_CODES = frozenset({ErrorCode.READER_FAILURE.value})  # reported, but nothing stops
# Held after the device recovers until the EV is unplugged: an RCD trip (hardware.md §1.4:
# "latch a fault"), and a contactor that failed during a session (a stuck-open contactor
# agrees with its command again as soon as it is commanded open; only a new session can tell).
LATCHED_CODES = frozenset({ErrorCode.GROUND_FAILURE.value, ErrorCode.POWER_SWITCH_FAILURE.value})
# The charger's own pilot hardware (EVSE board, PWM/ADC) is lost: the driver then reports E as
# a stand-in, which is not the EV's fault. InternalError, not EVCommunicationError: the link
# that failed is the one inside the charger (RS-485 to the board, SPI to the ADC); the EV may
# be fine, and a CSMS operator must send a technician, not blame the car.
PILOT_LOST = ErrorCode.INTERNAL_ERROR.value
OFFER_STOP_GRACE = 6.0  # s an EV in C may keep the contactor after the offer stops (seq. 10.2)
LOCK_RETRY = 5.0  # s between attempts to drive a lock that failed
TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
               "Heartbeat", "MeterValues", "StatusNotification")


@dataclass(frozen=True)
class ConnectorConfig:
    connector_id: int
    max_current: float
    has_lock: bool = False  # False: fixed cable (UnlockConnector is NotSupported)


@dataclass(frozen=True)
class StationConfig:
    vendor: str
    model: str
    connectors: tuple[ConnectorConfig, ...]
    serial_number: str | None = None
    firmware_version: str | None = None
    free_vend_id_tag: str | None = None  # None: tokens are authorized through OCPP
    authorize_timeout: float = 20.0  # s without Authorize.conf before the offline rules decide


@dataclass(frozen=True)
class IdSource:
    """Where the core gets fresh ids: message refs and transaction refs."""

    next_ref: Callable[[], str]
    next_tx_ref: Callable[[], int]


@dataclass(frozen=True)
class _Pending:
    """What a call in flight was for."""

    kind: str  # boot | heartbeat | status | authorize | start | meter | stop
    connector_id: int = 0
    id_tag: str = ""
    purpose: str = ""  # authorize: connector | floating | parent_stop | remote
    tx_ref: int = 0


@dataclass
class _Registration:
    status: RegistrationStatus | None = None
    link_up: bool = False
    booting: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is RegistrationStatus.ACCEPTED


@dataclass
class _Outputs:
    """What the core last commanded per connector, to emit changes only."""

    contactor: dict[int, bool] = field(default_factory=dict)
    offer: dict[int, float] = field(default_factory=dict)
    lock: dict[int, bool] = field(default_factory=dict)
    # Connectors in the grace after the offer stopped: False while it runs, True once over.
    offer_stop: dict[int, bool] = field(default_factory=dict)
    unlock_answers: set[int] = field(default_factory=set)  # UnlockConnector awaits the lock
    station_reported: tuple[ConnectorStatus, ErrorCode] | None = None


class Station:
    def __init__(self, config: StationConfig, settings: Settings, ids: IdSource) -> None:
        self.config = config
        self.settings = settings
        self._ids = ids
        self.connectors = {
            c.connector_id: Connector(c.connector_id, c.max_current, has_lock=c.has_lock)
            for c in config.connectors
        }
        self.registration = _Registration()
        self._outputs = _Outputs()
        self._pending: dict[str, _Pending] = {}
        self._reads: dict[int, list[str]] = {}
        self._settling: dict[int, tuple[ConnectorStatus, ErrorCode]] = {}
        self._station_warnings: dict[str, str | None] = {}
        self._floating: Authorization | None = None
        self._shutting_down = False
        self.cache = AuthorizationCache()
        self.local_list = LocalList()
        self._local_list_saved = self.local_list  # what LocalListNotSaved goes back to
        self._out: list[fx.Effect] = []
        self._now: Now | None = None
        settings.subscribe(self._setting_changed)

    # --- the entry point -------------------------------------------------------------

    def handle(self, event: ev.Event, now: Now) -> list[fx.Effect]:
        """Apply one event; return the effects, to be applied in order."""
        self._out = []
        self._now = now
        self._dispatch(event)
        self._reconcile()
        out, self._out = self._out, []
        return out

    def _dispatch(self, event: ev.Event) -> None:
        match event:
            case ev.Started():
                self._on_started()
            case ev.LinkUp():
                self._on_link_up()
            case ev.LinkDown():
                self._on_link_down()
            case ev.PilotChanged(connector_id=cid, state=state):
                self._on_pilot(self.connectors[cid], state)
            case ev.TokenPresented(id_tag=id_tag):
                self._on_token(id_tag)
            case ev.MeterSampled(connector_id=cid, reading=reading):
                self._on_reading(self.connectors[cid], reading)
            case ev.MeterReadFailed(connector_id=cid, detail=detail):
                self._on_read_failed(self.connectors[cid], detail)
            case ev.DeviceFault():
                self._on_fault(event)
            case ev.LockMoved():
                self._on_lock_moved(event)
            case ev.TimerFired(name=name):
                self._on_timer(name)
            case ev.CallAnswered(ref=ref, conf=conf):
                self._on_answer(ref, conf)
            case ev.CallFailed(ref=ref, reason=reason):
                self._on_call_failed(ref, reason)
            case ev.CsmsCommand(request=request):
                self._emit(fx.Reply(self._on_command(request)))
            case ev.LocalListNotSaved():
                self.local_list = self._local_list_saved
            case ev.ShutdownRequested(reason=reason):
                self._on_shutdown(reason)

    # --- helpers ---------------------------------------------------------------------

    @property
    def now(self) -> Now:
        assert self._now is not None, "handle() sets now"
        return self._now

    def _emit(self, effect: fx.Effect) -> None:
        self._out.append(effect)

    def _send(self, req: msg.OutboundReq, pending: _Pending) -> str:
        ref = self._ids.next_ref()
        self._pending[ref] = pending
        self._emit(fx.Send(ref, req))
        return ref

    def _read_meter(self, connector: Connector, purpose: str) -> None:
        purposes = self._reads.setdefault(connector.connector_id, [])
        if not purposes:
            self._emit(fx.ReadMeter(connector.connector_id))
        if purpose not in purposes:
            purposes.append(purpose)

    def _notice(self, connector_id: int, kind: str, detail: str = "") -> None:
        self._emit(fx.Notice(connector_id, kind, detail))

    # --- registration and the link ---------------------------------------------------

    def _on_started(self) -> None:
        for cid in self.connectors:
            self._emit(fx.SetContactor(cid, False))
            self._outputs.contactor[cid] = False
            self._emit(fx.SetOfferedCurrent(cid, 0.0))
            self._outputs.offer[cid] = 0.0
            if self.connectors[cid].has_lock:  # no transaction yet: free a plug left locked
                self._emit(fx.SetLock(cid, False))
                self._outputs.lock[cid] = False
        self._emit(fx.OpenTransactionQueue(False))

    def _on_link_up(self) -> None:
        self.registration.link_up = True
        if self.registration.accepted:
            self._report_all_statuses()
            self._arm_heartbeat()
        else:
            self._boot()

    def _on_link_down(self) -> None:
        self.registration.link_up = False
        self.registration.booting = False
        for connector in self.connectors.values():
            connector.reported = None  # report the current state again after reconnect
        self._outputs.station_reported = None
        self._emit(fx.CancelTimer("heartbeat"))

    def _boot(self) -> None:
        if self.registration.booting or not self.registration.link_up:
            return
        self.registration.booting = True
        req = msg.BootNotificationReq(
            vendor=self.config.vendor,
            model=self.config.model,
            serial_number=self.config.serial_number,
            firmware_version=self.config.firmware_version,
        )
        self._send(req, _Pending("boot"))

    def _on_boot_answer(self, conf: msg.BootNotificationConf) -> None:
        self.registration.booting = False
        self.registration.status = conf.status
        if conf.status is RegistrationStatus.ACCEPTED:
            if conf.interval > 0:
                self.settings.restore("HeartbeatInterval", conf.interval)
            self._emit(fx.OpenTransactionQueue(True))
            self._report_all_statuses()
            self._arm_heartbeat()
            self._arm_aligned()
            return
        # TC_001/TC_002: send nothing else and boot again only after the given interval.
        self._emit(fx.StartTimer("boot", float(conf.interval or BOOT_RETRY_DEFAULT)))

    def _arm_heartbeat(self) -> None:
        interval = self.settings.int("HeartbeatInterval")
        if interval > 0:
            self._emit(fx.StartTimer("heartbeat", float(interval)))
        else:
            self._emit(fx.CancelTimer("heartbeat"))

    def _on_heartbeat_timer(self) -> None:
        if self.registration.accepted and self.registration.link_up:
            self._send(msg.HeartbeatReq(), _Pending("heartbeat"))
        self._arm_heartbeat()

    def _setting_changed(self, name: str, value: Value) -> None:
        self._emit(fx.SaveSetting(name, render(value)))
        if name == "HeartbeatInterval" and self.registration.accepted:
            self._arm_heartbeat()
        elif name == "ClockAlignedDataInterval" and self.registration.accepted:
            self._arm_aligned()

    # --- status reporting ------------------------------------------------------------

    def _report_all_statuses(self) -> None:
        self._outputs.station_reported = None
        for connector in self.connectors.values():
            connector.reported = None

    def _station_error(self) -> ErrorCode:
        return ErrorCode(sorted(self._station_warnings)[0]) if self._station_warnings \
            else ErrorCode.NO_ERROR

    def _station_info(self) -> str | None:
        """The info of the warning :meth:`_station_error` reports."""
        code = self._station_error()
        return self._station_warnings.get(code.value) if code is not ErrorCode.NO_ERROR else None

    def _station_status(self) -> ConnectorStatus:
        if all(not c.operative for c in self.connectors.values()):
            return ConnectorStatus.UNAVAILABLE
        return ConnectorStatus.AVAILABLE

    def _status_notification(
        self, connector_id: int, status: ConnectorStatus, error: ErrorCode, info: str | None
    ) -> None:
        req = msg.StatusNotificationReq(
            connector_id=connector_id,
            status=status,
            error_code=error,
            timestamp=self.now.utc,
            info=info,
        )
        self._send(req, _Pending("status", connector_id))

    def _reconcile(self) -> None:
        for cid, connector in self.connectors.items():
            self._reconcile_outputs(cid, connector)
        if not (self.registration.accepted and self.registration.link_up):
            return
        station = (self._station_status(), self._station_error())
        if station != self._outputs.station_reported:
            self._outputs.station_reported = station
            self._status_notification(0, station[0], station[1], self._station_info())
        for cid, connector in self.connectors.items():
            self._reconcile_status(cid, connector)

    def _reconcile_outputs(self, cid: int, connector: Connector) -> None:
        wanted = contactor_wanted(connector) and not self._shutting_down
        wanted = wanted or self._offer_stop_grace(cid, connector)
        if self._outputs.contactor.get(cid) is not wanted:
            self._outputs.contactor[cid] = wanted
            self._emit(fx.SetContactor(cid, wanted))
        offer = 0.0 if self._shutting_down else offered_current(connector)
        if self._outputs.offer.get(cid) != offer:
            self._outputs.offer[cid] = offer
            self._emit(fx.SetOfferedCurrent(cid, offer))
        if connector.has_lock:
            self._reconcile_lock(cid, connector)

    def _offer_stop_grace(self, cid: int, connector: Connector) -> bool:
        """IEC 61851-1 Table A.6 seq. 10.2: when the offer drops to "no charging" and the EV
        stays in C, the contactor stays closed for the EV to stop drawing, and is forced
        open after OFFER_STOP_GRACE s (timer ``offer_stop``). True while it may stay closed."""
        grace = self._outputs.offer_stop
        holding = (self._outputs.contactor.get(cid, False) and not self._shutting_down
                   and offer_withdrawn(connector))
        if not holding:
            if grace.pop(cid, None) is False:
                self._emit(fx.CancelTimer(f"offer_stop:{cid}"))
            return False
        if cid not in grace:
            grace[cid] = False
            self._emit(fx.StartTimer(f"offer_stop:{cid}", OFFER_STOP_GRACE))
        return not grace[cid]

    def _reconcile_lock(self, cid: int, connector: Connector) -> None:
        """The lock follows the transaction; an UnlockConnector drives it open even when the
        core believes it is open already (the CSMS awaits what the lock does)."""
        wanted = lock_wanted(connector)
        answer = cid in self._outputs.unlock_answers
        self._outputs.unlock_answers.discard(cid)
        if self._outputs.lock.get(cid) is wanted and not answer:
            return
        self._outputs.lock[cid] = wanted
        connector.lock_confirmed = False
        self._emit(fx.CancelTimer(f"lock:{cid}"))
        self._emit(fx.SetLock(cid, wanted, answer))

    def _reconcile_status(self, cid: int, connector: Connector) -> None:
        current = (self.status(cid), connector.error_code)
        if connector.reported == current:
            self._settling.pop(cid, None)
            return
        hold = self.settings.int("MinimumStatusDuration")
        if hold > 0 and connector.reported is not None:
            if self._settling.get(cid) != current:  # MinimumStatusDuration: wait until stable
                self._settling[cid] = current
                self._emit(fx.StartTimer(f"status:{cid}", float(hold)))
            return
        self._report_status(cid, connector, current)

    def _report_status(self, cid: int, connector: Connector,
                       current: tuple[ConnectorStatus, ErrorCode]) -> None:
        self._settling.pop(cid, None)
        connector.reported = current
        info = next(iter(connector.faults.values()), None) if connector.faults else None
        self._status_notification(cid, current[0], current[1], info)

    def _on_status_settled(self, cid: int) -> None:
        connector = self.connectors[cid]
        current = (self.status(cid), connector.error_code)
        if self._settling.get(cid) == current and self._online:
            self._report_status(cid, connector, current)

    def status(self, connector_id: int) -> ConnectorStatus:
        """The connector's OCPP status right now."""
        connector = self.connectors[connector_id]
        tx = connector.transaction
        if tx is not None and not connector.faulted:
            if tx.stopping is not None:
                return ConnectorStatus.FINISHING
            if tx.meter_start_wh is None:
                return ConnectorStatus.PREPARING  # the transaction is still being started
            if tx.awaiting_ev and not connector.pilot.wants_energy:
                return ConnectorStatus.PREPARING  # the EV has a moment to answer the offer
        closed = self._outputs.contactor.get(connector_id, False)
        offering = self._outputs.offer.get(connector_id, 0.0) > 0  # else SuspendedEVSE
        return status_of(connector, closed and offering)

    # --- the pilot -------------------------------------------------------------------

    def _on_pilot(self, connector: Connector, state: PilotState) -> None:
        old = connector.pilot
        connector.pilot = state
        if state.wants_energy and connector.transaction is not None:
            connector.transaction.awaiting_ev = False
        self._track_pilot_fault(connector, state)
        if state.plugged and not old.plugged:
            self._on_plug(connector)
        elif state is PilotState.A and old is not PilotState.A:
            self._on_unplug(connector)

    def _track_pilot_fault(self, connector: Connector, state: PilotState) -> None:
        code = ErrorCode.EV_COMMUNICATION_ERROR.value
        stand_in = state is PilotState.E and PILOT_LOST in connector.faults
        if state.is_error and not stand_in:
            connector.faults[code] = f"control pilot in state {state.value}"
        else:
            connector.faults.pop(code, None)
        if state is PilotState.A:  # the EV left: latched faults whose device recovered end
            for latched in connector.latched:
                connector.faults.pop(latched, None)
            connector.latched.clear()

    def _on_plug(self, connector: Connector) -> None:
        self._emit(fx.CancelTimer(f"connection:{connector.connector_id}"))
        phase = connector.phase
        if phase is Phase.AUTHORIZED:
            auth = connector.authorization
            connector.lifecycle.fire("plug")
            assert auth is not None
            self._begin_transaction(connector, auth)
            return
        if not connector.lifecycle.fire("plug"):
            return
        auth = self._claim_authorization(connector)
        if auth is not None:
            self._authorize(connector, auth)

    def _claim_authorization(self, connector: Connector) -> Authorization | None:
        """A token presented before this plug-in, or the free-vend tag, if any applies."""
        if not (connector.operative and not connector.faulted and not self._shutting_down):
            return None
        if self._floating is not None:
            auth, self._floating = self._floating, None
            self._emit(fx.CancelTimer("connection:0"))
            return auth
        if self.config.free_vend_id_tag is not None:
            return Authorization(self.config.free_vend_id_tag)
        return None

    def _on_unplug(self, connector: Connector) -> None:
        tx = connector.transaction
        if tx is not None and tx.stopping is None:
            if self.settings.bool("StopTransactionOnEVSideDisconnect"):
                self._stop(connector, StopReason.EV_DISCONNECTED)
            return  # TC_005_3: otherwise the transaction stays open, SuspendedEV
        if tx is None:
            connector.lifecycle.fire("unplug")
            self._apply_pending_availability(connector)

    # --- tokens and authorization ----------------------------------------------------

    def _on_token(self, id_tag: str) -> None:
        if self._shutting_down:
            return
        owner = self._transaction_of(id_tag)
        if owner is not None:
            self._stop(owner, StopReason.LOCAL, id_tag)
            return
        target = self._token_target()
        if target is not None:
            self._request_authorization(id_tag, "connector", target)
        elif any(c.transaction and c.transaction.parent_id_tag for c in self.connectors.values()):
            self._request_authorization(id_tag, "parent_stop", 0)
        else:
            self._notice(0, "rejected", "no connector can take this card now")

    def _transaction_of(self, id_tag: str) -> Connector | None:
        for connector in self.connectors.values():
            tx = connector.transaction
            if tx is not None and tx.stopping is None and tx.id_tag.lower() == id_tag.lower():
                return connector
        return None

    def _token_target(self) -> int | None:
        """Plug first: the connector waiting for a card. Card first: the only connector, or 0,
        meaning the authorization floats until the next plug-in (DESIGN.md, token reader)."""
        usable = [c for c in self.connectors.values() if c.free and not self._shutting_down]
        waiting = [c for c in usable if c.phase is Phase.PLUGGED]
        if waiting:
            return waiting[0].connector_id
        idle = [c for c in usable if c.phase is Phase.IDLE]
        if not idle:
            return None
        return idle[0].connector_id if len(self.connectors) == 1 else 0

    def _request_authorization(self, id_tag: str, purpose: str, connector_id: int) -> None:
        if self.config.free_vend_id_tag is not None and purpose != "parent_stop":
            self._grant(id_tag, None, purpose, connector_id)
            return
        pending = _Pending("authorize", connector_id, id_tag, purpose)
        local = local_decision(id_tag, self.cache, self.settings, online=self._online,
                               now=self.now.utc, local_list=self.local_list)
        if local is not None and purpose != "parent_stop":
            self._on_authorize_answer(pending, local)  # LocalPreAuthorize, or offline rules
        elif self._online:
            ref = self._send(msg.AuthorizeReq(id_tag), pending)
            self._emit(fx.StartTimer(f"authorize:{ref}", self.config.authorize_timeout))
        else:
            self._notice(connector_id, "rejected", f"{id_tag}: offline and not known locally")

    @property
    def _online(self) -> bool:
        return self.registration.accepted and self.registration.link_up

    def _authorize_without_csms(self, pending: _Pending, reason: str) -> None:
        """The CSMS did not answer an Authorize: the offline rules decide."""
        local = local_decision(pending.id_tag, self.cache, self.settings, online=False,
                               now=self.now.utc, local_list=self.local_list)
        if local is None:
            self._notice(pending.connector_id, "rejected", f"{pending.id_tag}: CSMS {reason}")
            return
        self._on_authorize_answer(pending, local)

    def _remember(self, id_tag: str, info: IdTagInfo) -> None:
        if id_tag and self.settings.bool("AuthorizationCacheEnabled"):
            self.cache.update(id_tag, info)
            self._emit(fx.CacheIdTag(id_tag, info))

    def _on_authorize_answer(self, pending: _Pending, info: IdTagInfo) -> None:
        if info.status is not AuthStatus.ACCEPTED:
            self._notice(pending.connector_id, "rejected", f"{pending.id_tag}: {info.status}")
            return
        if pending.purpose == "parent_stop":
            self._stop_by_parent(pending.id_tag, info.parent_id_tag)
            return
        self._grant(pending.id_tag, info.parent_id_tag, pending.purpose, pending.connector_id)

    def _grant(self, id_tag: str, parent: str | None, purpose: str, connector_id: int) -> None:
        auth = Authorization(id_tag, parent)
        if connector_id == 0:
            self._floating = auth
            self._emit(fx.StartTimer("connection:0", float(self.settings.int("ConnectionTimeOut"))))
            self._notice(0, "accepted", id_tag)
            return
        connector = self.connectors[connector_id]
        if not connector.free or connector.phase not in (Phase.IDLE, Phase.PLUGGED):
            self._notice(connector_id, "rejected", "connector no longer free")
            return
        self._authorize(connector, auth)

    def _authorize(self, connector: Connector, auth: Authorization) -> None:
        self._notice(connector.connector_id, "accepted", auth.id_tag)
        if connector.phase is Phase.PLUGGED:
            connector.lifecycle.fire("authorize")
            self._begin_transaction(connector, auth)
            return
        connector.lifecycle.fire("authorize")
        connector.authorization = auth
        timeout = float(self.settings.int("ConnectionTimeOut"))
        self._emit(fx.StartTimer(f"connection:{connector.connector_id}", timeout))

    def _stop_by_parent(self, id_tag: str, parent: str | None) -> None:
        """TC_069: a different token of the same group may stop the transaction."""
        for connector in self.connectors.values():
            tx = connector.transaction
            if tx is None or tx.stopping is not None or not tx.parent_id_tag or not parent:
                continue
            if tx.parent_id_tag.lower() == parent.lower():
                self._stop(connector, StopReason.LOCAL, id_tag)
                return
        self._notice(0, "rejected", f"{id_tag}: no transaction of its group")

    def _on_connection_timeout(self, connector_id: int) -> None:
        if connector_id == 0:
            self._floating = None
            return
        connector = self.connectors[connector_id]
        if connector.lifecycle.fire("expire"):
            connector.authorization = None
            self._apply_pending_availability(connector)

    # --- transactions ----------------------------------------------------------------

    def _begin_transaction(self, connector: Connector, auth: Authorization) -> None:
        connector.authorization = None
        connector.transaction = Transaction(
            tx_ref=self._ids.next_tx_ref(),
            id_tag=auth.id_tag,
            parent_id_tag=auth.parent_id_tag,
            started_mono=self.now.mono,
        )
        self._read_meter(connector, "start")

    def _start_transaction(self, connector: Connector, energy_wh: float) -> None:
        tx = connector.transaction
        assert tx is not None
        tx.meter_start_wh = int(energy_wh)
        tx.started_at = self.now.utc
        req = msg.StartTransactionReq(
            tx_ref=tx.tx_ref,
            connector_id=connector.connector_id,
            id_tag=tx.id_tag,
            meter_start_wh=tx.meter_start_wh,
            timestamp=tx.started_at,
        )
        self._send(req, _Pending("start", connector.connector_id, tx.id_tag, tx_ref=tx.tx_ref))
        self._arm_sampling(connector)
        tx.awaiting_ev = not connector.pilot.wants_energy
        if tx.awaiting_ev:
            self._emit(fx.StartTimer(f"ev_grace:{connector.connector_id}", EV_RESPONSE_GRACE))
        self._notice(connector.connector_id, "charging", tx.id_tag)

    def _abandon_start(self, connector: Connector) -> None:
        """A fault came while the meter start was read (a store that cannot journal, a
        device): no transaction starts on a faulted connector (TC_041)."""
        connector.transaction = None
        connector.lifecycle.fire("end")
        if not connector.pilot.plugged:
            connector.lifecycle.fire("unplug")
        self._notice(connector.connector_id, "rejected", "faulted before the transaction began")

    def _arm_sampling(self, connector: Connector) -> None:
        interval = self.settings.int("MeterValueSampleInterval")
        if interval > 0:
            self._emit(fx.StartTimer(f"sample:{connector.connector_id}", float(interval)))

    def _on_sample_timer(self, connector: Connector) -> None:
        tx = connector.transaction
        if tx is None or tx.stopping is not None:
            return
        self._read_meter(connector, "sample")
        self._arm_sampling(connector)

    def _send_sample(self, connector: Connector, reading: MeterReading, context: str) -> None:
        """A periodic (Sample.Periodic) or clock-aligned (Sample.Clock) sample; in a transaction
        it is a transaction message and also feeds StopTransaction.transactionData."""
        tx = connector.transaction
        aligned = context == "Sample.Clock"
        key = "MeterValuesAlignedData" if aligned else "MeterValuesSampledData"
        sample = meter_sample(reading, self.settings.csl(key), self.now.utc, context)
        req = msg.MeterValuesReq(connector.connector_id, tx.tx_ref if tx else None, (sample,))
        self._send(req, _Pending("meter", connector.connector_id, tx_ref=tx.tx_ref if tx else 0))
        if tx is not None:
            self._keep_transaction_data(tx, reading, aligned, context)

    def _keep_transaction_data(self, tx: Transaction, reading: MeterReading, aligned: bool,
                               context: str) -> None:
        measurands = self.settings.csl("StopTxnAlignedData" if aligned else "StopTxnSampledData")
        if measurands and len(tx.transaction_data) < MAX_TRANSACTION_DATA:
            tx.transaction_data.append(meter_sample(reading, measurands, self.now.utc, context))

    def _stop(self, connector: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        tx = connector.transaction
        if tx is None or tx.stopping is not None:
            return
        tx.stopping = reason
        tx.stop_id_tag = id_tag
        self._emit(fx.CancelTimer(f"sample:{connector.connector_id}"))
        self._emit(fx.CancelTimer(f"ev_grace:{connector.connector_id}"))
        self._read_meter(connector, "stop")

    def _finish_transaction(self, connector: Connector, energy_wh: float) -> None:
        tx = connector.transaction
        assert tx is not None and tx.stopping is not None
        meter_stop = max(int(energy_wh), tx.meter_start_wh or 0)
        req = msg.StopTransactionReq(
            tx_ref=tx.tx_ref,
            meter_stop_wh=meter_stop,
            timestamp=self.now.utc,
            reason=tx.stopping,
            id_tag=tx.stop_id_tag,
            transaction_data=tuple(tx.transaction_data),
        )
        self._send(req, _Pending("stop", connector.connector_id, tx.id_tag, tx_ref=tx.tx_ref))
        connector.transaction = None
        connector.lifecycle.fire("end")
        if not connector.pilot.plugged:
            connector.lifecycle.fire("unplug")
        energy = meter_stop - (tx.meter_start_wh or 0)
        self._notice(connector.connector_id, "finished", f"{energy} Wh")
        self._apply_pending_availability(connector)

    def _on_start_answer(self, pending: _Pending, conf: msg.StartTransactionConf) -> None:
        connector = self.connectors[pending.connector_id]
        tx = connector.transaction
        if tx is None or tx.tx_ref != pending.tx_ref:
            return  # already stopped; the delivery layer keeps the id for the stop message
        tx.transaction_id = conf.transaction_id
        self._remember(tx.id_tag, conf.id_tag_info)
        if conf.id_tag_info.parent_id_tag:
            tx.parent_id_tag = conf.id_tag_info.parent_id_tag
        if conf.id_tag_info.status is AuthStatus.ACCEPTED:
            return
        if self.settings.bool("StopTransactionOnInvalidId"):
            self._stop(connector, StopReason.DE_AUTHORIZED)
        else:
            tx.energy_allowed = False  # SuspendedEVSE until the EV leaves

    # --- the meter -------------------------------------------------------------------

    def _on_reading(self, connector: Connector, reading: MeterReading) -> None:
        connector.last_reading = reading
        self._serve_reads(connector, reading.energy_wh, reading)

    def _on_read_failed(self, connector: Connector, detail: str) -> None:
        log.warning("connector %s: meter read failed: %s", connector.connector_id, detail)
        last = connector.last_reading
        tx = connector.transaction
        fallback = last.energy_wh if last else float(tx.meter_start_wh or 0) if tx else 0.0
        self._serve_reads(connector, fallback, None)

    def _serve_reads(
        self, connector: Connector, energy_wh: float, reading: MeterReading | None
    ) -> None:
        purposes = self._reads.pop(connector.connector_id, [])
        tx = connector.transaction
        if "start" in purposes and tx is not None and tx.meter_start_wh is None:
            if connector.faulted:
                self._abandon_start(connector)
            else:
                self._start_transaction(connector, energy_wh)
        if reading is not None:
            if "sample" in purposes:
                self._send_sample(connector, reading, "Sample.Periodic")
            if "aligned" in purposes:
                self._send_sample(connector, reading, "Sample.Clock")
            if "trigger" in purposes:
                self._send_triggered_sample(connector, reading)
        if "stop" in purposes and connector.transaction is not None:
            self._finish_transaction(connector, energy_wh)

    # --- faults ----------------------------------------------------------------------

    def _on_fault(self, event: ev.DeviceFault) -> None:
        """A device fault. Most fault their connector (or, on connector 0, every connector);
        warnings such as a lost reader only show in connector 0's errorCode: remote starts
        and running sessions go on."""
        if event.error_code in WARNING_CODES:
            faults = self._station_warnings
            if event.active:
                faults[event.error_code] = event.info
            else:
                faults.pop(event.error_code, None)
            return
        targets = self.connectors.values() if event.connector_id == 0 else [
            self.connectors[event.connector_id]
        ]
        for connector in targets:
            self._set_fault(connector, event.error_code, event.active, event.info)

    def _set_fault(self, connector: Connector, code: str, active: bool, info: str | None) -> None:
        if active:
            connector.faults[code] = info
            connector.latched.discard(code)
            if code == PILOT_LOST:  # the E that follows is the driver's stand-in
                connector.faults.pop(ErrorCode.EV_COMMUNICATION_ERROR.value, None)
        elif code in LATCHED_CODES and code in connector.faults and connector.pilot.plugged:
            connector.latched.add(code)  # until the EV is unplugged (_track_pilot_fault)
        else:
            connector.faults.pop(code, None)

    # --- the connector lock ----------------------------------------------------------

    def _on_lock_moved(self, event: ev.LockMoved) -> None:
        """A lock that does not move is ConnectorLockFailure (the connector is Faulted, so the
        contactor stays open) and is driven again every LOCK_RETRY s until it obeys."""
        cid = event.connector_id
        connector = self.connectors[cid]
        if self._outputs.lock.get(cid) is not event.locked:
            return  # a newer command is on its way
        code = ErrorCode.CONNECTOR_LOCK_FAILURE.value
        if event.ok:
            connector.lock_confirmed = event.locked
            connector.faults.pop(code, None)
            return
        word = "lock" if event.locked else "unlock"
        connector.faults[code] = event.info or f"connector did not {word}"
        self._emit(fx.StartTimer(f"lock:{cid}", LOCK_RETRY))

    def _on_lock_retry(self, cid: int) -> None:
        locked = self._outputs.lock.get(cid)
        if locked is not None:
            self._emit(fx.SetLock(cid, locked))

    # --- timers ----------------------------------------------------------------------

    def _on_timer(self, name: str) -> None:
        kind, _, arg = name.partition(":")
        if kind == "heartbeat":
            self._on_heartbeat_timer()
        elif kind == "boot":
            self._boot()
        elif kind == "connection":
            self._on_connection_timeout(int(arg))
        elif kind == "sample":
            self._on_sample_timer(self.connectors[int(arg)])
        elif kind == "aligned":
            self._on_aligned_timer()
        elif kind == "status":
            self._on_status_settled(int(arg))
        elif kind == "authorize":
            self._on_call_failed(arg, "timeout")  # a late answer is then ignored
        elif kind == "lock":
            self._on_lock_retry(int(arg))
        elif kind == "offer_stop":
            if int(arg) in self._outputs.offer_stop:
                log.warning("connector %s: EV still in C %s s after the offer stopped: "
                            "opening the contactor under load", arg, OFFER_STOP_GRACE)
                self._outputs.offer_stop[int(arg)] = True
        elif kind == "ev_grace":
            tx = self.connectors[int(arg)].transaction
            if tx is not None:
                tx.awaiting_ev = False

    # --- answers to our calls --------------------------------------------------------

    def _on_answer(self, ref: str, conf: msg.InboundConf) -> None:
        pending = self._pending.pop(ref, None)
        if pending is None:
            return
        if pending.kind == "authorize":
            self._emit(fx.CancelTimer(f"authorize:{ref}"))
        match conf:
            case msg.BootNotificationConf():
                self._on_boot_answer(conf)
            case msg.AuthorizeConf(id_tag_info=info):
                self._remember(pending.id_tag, info)
                self._on_authorize_answer(pending, info)
            case msg.StartTransactionConf():
                self._on_start_answer(pending, conf)
            case msg.StopTransactionConf(id_tag_info=info) if info is not None:
                self._remember(pending.id_tag, info)

    def _on_call_failed(self, ref: str, reason: str) -> None:
        pending = self._pending.pop(ref, None)
        if pending is None:
            return
        if pending.kind == "boot":
            self.registration.booting = False
            self._emit(fx.StartTimer("boot", float(BOOT_RETRY_AFTER_FAILURE)))
        elif pending.kind == "authorize":
            self._authorize_without_csms(pending, reason)

    # --- commands from the CSMS ------------------------------------------------------

    def _on_command(self, request: msg.CsmsRequest) -> msg.CsmsResponse:
        match request:
            case msg.CsmsRemoteStart():
                return msg.CommandResult(self._remote_start(request))
            case msg.CsmsRemoteStop(transaction_id=transaction_id):
                return msg.CommandResult(self._remote_stop(transaction_id))
            case msg.CsmsGetConfiguration(keys=keys):
                return self._get_configuration(keys)
            case msg.CsmsChangeConfiguration(key=key, value=value):
                return msg.ChangeConfigurationResult(self._change_configuration(key, value))
            case msg.CsmsChangeAvailability(connector_id=cid, operative=operative):
                return msg.StatusResult(self._change_availability(cid, operative))
            case msg.CsmsReset(hard=hard):
                return msg.CommandResult(self._reset(hard))
            case msg.CsmsUnlockConnector(connector_id=cid):
                return msg.StatusResult(self._unlock(cid))
            case msg.CsmsTriggerMessage(message=message, connector_id=cid):
                return msg.StatusResult(self._trigger(message, cid))
            case msg.CsmsClearCache():
                self.cache.clear()
                self._emit(fx.CacheIdTag(None, None))
                return msg.StatusResult("Accepted")
            case msg.CsmsDataTransfer():
                return msg.StatusResult("UnknownVendorId")  # TC_062: no vendor extensions
            case msg.CsmsSendLocalList():
                return msg.StatusResult(self._send_local_list(request))
            case msg.CsmsGetLocalListVersion():
                enabled = self.settings.bool("LocalAuthListEnabled")
                return msg.LocalListVersionResult(self.local_list.version if enabled else -1)

    def _remote_start(self, request: msg.CsmsRemoteStart) -> RequestStatus:
        connector = self._remote_start_target(request.connector_id)
        if connector is None or self._shutting_down:
            return RequestStatus.REJECTED
        if self.settings.bool("AuthorizeRemoteTxRequests"):
            self._request_authorization(request.id_tag, "remote", connector.connector_id)
        else:
            self._authorize(connector, Authorization(request.id_tag))
        return RequestStatus.ACCEPTED

    def _remote_start_target(self, connector_id: int | None) -> Connector | None:
        if connector_id is None:
            free = sorted(
                (c for c in self.connectors.values() if c.free),
                key=lambda c: (c.phase is not Phase.PLUGGED, c.connector_id),
            )
            return free[0] if free else None
        connector = self.connectors.get(connector_id)  # TC_027: connectorId 0 is not one
        return connector if connector is not None and connector.free else None

    def _remote_stop(self, transaction_id: int) -> RequestStatus:
        for connector in self.connectors.values():
            tx = connector.transaction
            if tx is not None and tx.transaction_id == transaction_id and tx.stopping is None:
                self._stop(connector, StopReason.REMOTE)
                return RequestStatus.ACCEPTED
        return RequestStatus.REJECTED  # TC_028, and a stop of a stopped transaction

    def _get_configuration(self, keys: tuple[str, ...]) -> msg.GetConfigurationResult:
        names = keys or self.settings.names()
        entries: list[msg.ConfigurationEntry] = []
        unknown: list[str] = []
        for name in names:
            try:
                value = render(self.settings.get(name))
            except KeyError:
                unknown.append(name)
                continue
            entries.append(msg.ConfigurationEntry(name, value, self.settings.is_readonly(name)))
        return msg.GetConfigurationResult(tuple(entries), tuple(unknown))

    def _change_configuration(self, key: str, value: str) -> str:
        try:
            self.settings.change(key, value)
        except KeyError:
            return "NotSupported"
        except (PermissionError, ValueError):
            return "Rejected"
        return "Accepted"

    # --- the local authorization list --------------------------------------------------

    def _send_local_list(self, request: msg.CsmsSendLocalList) -> str:
        """TC_043: Full replaces, Differential needs a newer version (else VersionMismatch);
        too many entries is Failed."""
        if len(request.entries) > SEND_LOCAL_LIST_MAX:
            return "Failed"
        if not request.full and request.version <= self.local_list.version:
            return "VersionMismatch"
        candidate = LocalList(self.local_list.version, self.local_list.entries())
        if request.full:
            candidate.replace(request.version, request.entries)
        else:
            candidate.apply(request.version, request.entries)
        if len(candidate) > LOCAL_LIST_MAX:
            return "Failed"
        self._local_list_saved, self.local_list = self.local_list, candidate
        self._emit(fx.SaveLocalList(candidate.version, tuple(candidate.entries())))
        return "Accepted"

    # --- availability, reset, unlock, trigger -----------------------------------------

    def restore_authorization(self, cache: list[tuple[str, IdTagInfo]], list_version: int,
                              list_entries: list[tuple[str, IdTagInfo]]) -> None:
        """The cache and the local list kept across restarts; call before Started."""
        self.cache = AuthorizationCache(cache)
        self.local_list = LocalList(list_version, list_entries)

    def restore_availability(self, operative: dict[int, bool]) -> None:
        """Availability kept across restarts (TC_013..016, TC_034); call before Started."""
        for cid, value in operative.items():
            if cid in self.connectors:
                self.connectors[cid].operative = value

    def _change_availability(self, connector_id: int, operative: bool) -> str:
        if connector_id != 0 and connector_id not in self.connectors:
            return "Rejected"
        targets = (list(self.connectors.values()) if connector_id == 0
                   else [self.connectors[connector_id]])
        scheduled = False
        for connector in targets:
            scheduled |= self._set_availability(connector, operative)
            self._emit(fx.SaveAvailability(connector.connector_id, operative))
        return "Scheduled" if scheduled else "Accepted"

    def _set_availability(self, connector: Connector, operative: bool) -> bool:
        """Apply now, or schedule for the end of the running transaction (returns True)."""
        if operative:
            connector.operative, connector.pending_inoperative = True, False
            return False
        if connector.transaction is not None:
            connector.pending_inoperative = True
            return True
        connector.operative = False
        if connector.lifecycle.fire("expire"):
            connector.authorization = None
        return False

    def _apply_pending_availability(self, connector: Connector) -> None:
        if connector.pending_inoperative and connector.transaction is None:
            connector.operative = False
            connector.pending_inoperative = False

    def _reset(self, hard: bool) -> RequestStatus:
        """TC_013..016: end every transaction (HardReset/SoftReset), then reboot."""
        reason = StopReason.HARD_RESET if hard else StopReason.SOFT_RESET
        self._shutting_down = True
        for connector in self.connectors.values():
            self._stop(connector, reason)
        self._emit(fx.Reboot(hard))
        return RequestStatus.ACCEPTED

    def _unlock(self, connector_id: int) -> str:
        """TC_017/018/031: without a connector lock (fixed cable) there is nothing to unlock.
        With one, a running transaction ends first (UnlockCommand), then the lock opens; the
        runtime answers Unlocked or UnlockFailed from what the lock does (SetLock.answer)."""
        connector = self.connectors.get(connector_id)
        if connector is None or not connector.has_lock:
            return "NotSupported"
        self._stop(connector, StopReason.UNLOCK_COMMAND)
        self._outputs.unlock_answers.add(connector_id)
        return "Unlocked"

    def _trigger(self, message: str, connector_id: int | None) -> str:
        """TC_054/055: answer first (the runtime sends the reply before the message)."""
        if message not in TRIGGERABLE:
            return "NotImplemented"
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return "Rejected"
        if connector_id == 0 and message == "MeterValues":
            return "Rejected"
        self._send_triggered(message, connector_id)
        return "Accepted"

    def _send_triggered(self, message: str, connector_id: int | None) -> None:
        targets = [connector_id] if connector_id is not None else [0, *self.connectors]
        if message == "BootNotification":
            self.registration.booting = False
            self._boot()
        elif message == "Heartbeat":
            self._send(msg.HeartbeatReq(), _Pending("heartbeat"))
        elif message == "DiagnosticsStatusNotification":
            self._send(msg.DiagnosticsStatusReq(), _Pending("diagnostics"))
        elif message == "FirmwareStatusNotification":
            self._send(msg.FirmwareStatusReq(), _Pending("firmware"))
        elif message == "StatusNotification":
            for cid in targets:
                self._force_status(cid)
        else:
            for cid in targets:
                if cid in self.connectors:
                    self._read_meter(self.connectors[cid], "trigger")

    def _force_status(self, connector_id: int) -> None:
        if connector_id == 0:
            self._status_notification(0, self._station_status(), self._station_error(),
                                      self._station_info())
            return
        connector = self.connectors[connector_id]
        connector.reported = None  # the reconcile step re-sends it

    def _send_triggered_sample(self, connector: Connector, reading: MeterReading) -> None:
        measurands = self.settings.csl("MeterValuesSampledData")
        sample = meter_sample(reading, measurands, self.now.utc, "Trigger")
        tx = connector.transaction
        req = msg.MeterValuesReq(connector.connector_id, None, (sample,))
        self._send(req, _Pending("meter", connector.connector_id, tx_ref=tx.tx_ref if tx else 0))

    # --- clock-aligned data ------------------------------------------------------------

    def _arm_aligned(self) -> None:
        interval = self.settings.int("ClockAlignedDataInterval")
        if interval > 0:
            delay = seconds_to_next_aligned(self.now.utc, interval)
            self._emit(fx.StartTimer("aligned", delay))
        else:
            self._emit(fx.CancelTimer("aligned"))

    def _on_aligned_timer(self) -> None:
        for connector in self.connectors.values():
            self._read_meter(connector, "aligned")
        self._arm_aligned()

    # --- shutdown ------------------------------------------------------------------------

    def _on_shutdown(self, reason: StopReason) -> None:
        self._shutting_down = True
        for connector in self.connectors.values():
            self._stop(connector, reason)

