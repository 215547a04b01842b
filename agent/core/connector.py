"""One connector: its lifecycle, the facts beside it, and what follows from them.

The status reported to the CSMS and the contactor command are *derived* here, each in one
function, from the lifecycle phase and the facts. Nothing else decides either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.core.lifecycle import Lifecycle, Phase
from agent.core.messages import MeterSample
from agent.core.types import (
    ConnectorStatus,
    ErrorCode,
    LocalLimits,
    Reservation,
    StopReason,
    TxTrigger,
)
from hal.roles import MeterReading, PilotState


@dataclass
class Transaction:
    """An open transaction as the core knows it.

    ``tx_ref`` is ours from the start; ``transaction_id`` is the CSMS's, known once
    StartTransaction.conf arrives. ``stopping`` holds the reason once a stop was decided and
    the final meter read is awaited.
    """

    tx_ref: int
    id_tag: str
    started_mono: float
    group_id: str | None = None
    meter_start_wh: int | None = None
    started_at: datetime | None = None
    transaction_id: int | None = None
    energy_allowed: bool = True
    stopping: StopReason | None = None
    stop_id_tag: str | None = None
    end_samples: list[MeterSample] = field(default_factory=list)  # sent with the end
    awaiting_ev: bool = True  # started, and the EV has not yet asked for power
    trigger: TxTrigger = TxTrigger.AUTHORIZED
    remote_start_id: int | None = None
    reservation_id: int | None = None
    seq_no: int = 0  # the seq_no of the transaction's next message

    def next_seq_no(self) -> int:
        seq_no, self.seq_no = self.seq_no, self.seq_no + 1
        return seq_no


@dataclass(frozen=True)
class Authorization:
    """An accepted token waiting for its transaction to start."""

    id_tag: str
    group_id: str | None = None
    remote: bool = False  # a remote start: the transaction's trigger is RemoteStart
    remote_start_id: int | None = None
    reservation_id: int | None = None  # the reservation this token uses


@dataclass
class Connector:
    connector_id: int
    max_current: float
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    pilot: PilotState = PilotState.A
    pilot_read: bool = False  # a first pilot reading came in: until then A is only assumed
    operative: bool = True  # the CSMS's choice (ChangeAvailability), kept across restarts
    pending_inoperative: bool = False
    # An update waits for the transactions to end (agent/core/availability.py): never saved,
    # never the CSMS's choice; a running transaction goes on.
    maintenance_hold: bool = False
    faults: dict[str, str | None] = field(default_factory=dict)  # error code -> info
    # Faults whose device recovered but that hold until the EV is unplugged (GroundFailure,
    # PowerSwitchFailure): the driver sees what happened before the next session.
    latched: set[str] = field(default_factory=set)
    has_lock: bool = False  # a socket with a lock motor; False: fixed cable
    voltage: float = 230.0  # V per phase (connector.voltage in the configuration)
    phases: int = 3  # phases wired (connector.phases)
    lock_confirmed: bool = False  # the lock reported locked after the last lock command
    authorization: Authorization | None = None
    transaction: Transaction | None = None
    reservation: Reservation | None = None  # held for it (agent/core/reservations.py)
    last_reading: MeterReading | None = None
    reported: tuple[ConnectorStatus, ErrorCode] | None = None
    # The current limit in force and who set it (agent/core/smart_charging.py keeps it):
    # "hardware", a profile purpose, or "local:<source>". None: not computed yet.
    limit_amps: float | None = None
    limit_source: str = "hardware"
    local_limit: tuple[float, str] | None = None  # (amps, source) from a local client
    offered: float = 0.0  # what the pilot offers now (written by agent/core/outputs.py only)
    # 1<->3 phase switching (agent/core/phases.py keeps these): a relay that connects L2/L3
    # is configured; the phases it connects now; a switch under way (the EV is paused, the
    # contactor stays open); a local client's request (phases, source); the composite
    # schedule's numberPhases now and the limit in W when a profile in W sets the limit.
    phase_switch: bool = False
    active_phases: int = 3
    switching_phases: bool = False
    phase_request: tuple[int, str] | None = None
    limit_phases: int | None = None
    limit_watts: float | None = None

    @property
    def phase(self) -> Phase:
        return self.lifecycle.phase

    @property
    def error_code(self) -> ErrorCode:
        if not self.faults:
            return ErrorCode.NO_ERROR
        return ErrorCode(sorted(self.faults)[0])

    @property
    def faulted(self) -> bool:
        return bool(self.faults)

    @property
    def in_service(self) -> bool:
        """Operative for the CSMS and not held for an update: may take a new session."""
        return self.operative and not self.maintenance_hold

    @property
    def local_requests(self) -> LocalLimits:
        """What local clients asked of it (limit, phase request), as kept across restarts."""
        return LocalLimits(self.local_limit, self.phase_request)

    @property
    def free(self) -> bool:
        """Can take a new session right now (remote start, card first)."""
        return self.in_service and not self.faulted and self.phase in (Phase.IDLE, Phase.PLUGGED)


MIN_OFFER = 6.0  # A: IEC 61851-1 Annex A, the lowest current a PWM duty cycle may offer
DRAWING = 1.0  # A on a phase that counts as drawn


def limit_pauses(connector: Connector) -> bool:
    """The limit in force is below the lowest current the pilot can offer: the offer goes to
    "no charging" and the transaction goes on, paused (SuspendedEVSE)."""
    return connector.limit_amps is not None and connector.limit_amps < MIN_OFFER


def paused(connector: Connector) -> bool:
    """The charger offers "no charging" while the transaction goes on: a limit below 6 A, or
    a switch between 1 and 3 phases under way (agent/core/phases.py)."""
    return limit_pauses(connector) or connector.switching_phases


def drawn_phases(connector: Connector) -> int | None:
    """The phases the EV draws on in the last meter sample (current above DRAWING A); 1 on
    a connector wired for one phase or switched to one; None when nothing tells."""
    if connector.phases == 1 or connector.active_phases == 1:
        return 1
    reading = connector.last_reading
    if reading is None or reading.current_a is None:
        return None
    drawn = sum(1 for amps in reading.current_a if amps > DRAWING)
    return drawn or None


def contactor_wanted(connector: Connector) -> bool:
    """The contactor may be closed only for an open, energy-allowed transaction on an
    operative, fault-free connector whose EV asks for power (DESIGN.md, Safety), and, on a
    socket, once its lock holds the plug; never while a limit pauses the charging or the
    phases are being switched."""
    tx = connector.transaction
    return (
        not paused(connector)
        and (connector.lock_confirmed or not connector.has_lock)
        and connector.phase is Phase.TRANSACTION
        and tx is not None
        and tx.energy_allowed
        and tx.stopping is None
        and tx.meter_start_wh is not None
        and not connector.faulted
        and connector.pilot.wants_energy
    )


def lock_wanted(connector: Connector) -> bool:
    """A socket's lock holds the plug while a transaction runs and not after it ends, so the
    driver can take the cable once the session is over."""
    tx = connector.transaction
    return (connector.has_lock and connector.phase is Phase.TRANSACTION and tx is not None
            and tx.stopping is None)


def offer_withdrawn(connector: Connector) -> bool:
    """The transaction goes on with the offer at "no charging" (energy not allowed, a limit
    below 6 A, a phase switch) while the EV still asks for power: the EV gets a grace period
    to stop drawing before the contactor opens under load (IEC 61851-1 Table A.6 seq. 10.2)."""
    tx = connector.transaction
    return ev_may_hold_on(connector) and tx is not None and (
        not tx.energy_allowed or paused(connector))


def ev_may_hold_on(connector: Connector) -> bool:
    """A live transaction whose EV still asks for power: the only case in which a contactor
    may stay closed under an offer of "no charging" (for the grace); never at a stop, a
    fault or a pilot that left C/D."""
    tx = connector.transaction
    return (
        connector.phase is Phase.TRANSACTION
        and tx is not None
        and tx.stopping is None
        and not connector.faulted
        and connector.pilot.wants_energy
    )


def offered_current(connector: Connector) -> float:
    """What the pilot offers: during a live transaction the limit in force (the connector's
    maximum, a charging profile or a local limit, whichever is lowest), "no charging" (0)
    below MIN_OFFER or while the phases are switched; outside a live transaction nothing."""
    tx = connector.transaction
    live = (
        not connector.switching_phases
        and connector.phase is Phase.TRANSACTION
        and tx is not None
        and tx.energy_allowed
        and tx.stopping is None
        and not connector.faulted
    )
    if not live:
        return 0.0
    limit = connector.max_current
    if connector.limit_amps is not None:
        limit = min(limit, connector.limit_amps)
    return limit if limit >= MIN_OFFER else 0.0


def status_of(connector: Connector, contactor_closed: bool) -> ConnectorStatus:
    """The one place a connector's OCPP status comes from."""
    if connector.faulted:
        return ConnectorStatus.FAULTED
    phase = connector.phase
    if phase is Phase.TRANSACTION:
        if paused(connector):
            return ConnectorStatus.SUSPENDED_EVSE  # the charger offers nothing: paused
        if connector.pilot.wants_energy:
            return ConnectorStatus.CHARGING if contactor_closed else ConnectorStatus.SUSPENDED_EVSE
        return ConnectorStatus.SUSPENDED_EV
    if not connector.in_service:
        return ConnectorStatus.UNAVAILABLE
    if connector.reservation is not None and phase in (Phase.IDLE, Phase.PLUGGED):
        return ConnectorStatus.RESERVED  # until a token of the reservation is accepted
    if phase in (Phase.PLUGGED, Phase.AUTHORIZED):
        return ConnectorStatus.PREPARING
    if phase is Phase.FINISHING:
        return ConnectorStatus.FINISHING
    return ConnectorStatus.AVAILABLE
