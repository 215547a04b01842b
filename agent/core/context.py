"""What the core's features share while the station handles one event.

Each feature of the core (registration, authorization, transactions, ...) is a component that
owns its own state and reaches the rest of the charger only through a :class:`Context`: the
connectors, the settings, the time of the event, and the one list of effects the event
produces. The context does no I/O either: :meth:`Context.send` and :meth:`Context.read_meter`
only *emit* effects, which the runtime applies in order after the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.connector import Connector
from agent.core.settings import Settings
from agent.core.types import Now, RegistrationStatus


@dataclass(frozen=True)
class ConnectorConfig:
    connector_id: int
    max_current: float
    has_lock: bool = False  # False: fixed cable (UnlockConnector is NotSupported)
    voltage: float = 230.0  # V per phase: turns a limit in W into A (P = U * I * phases)
    phases: int = 3  # phases wired to the connector (1 or 3)
    phase_switch: PhaseSwitchSpec | None = None  # a 1<->3 phase relay, if one is wired


@dataclass(frozen=True)
class PhaseSwitchSpec:
    """A relay that connects L2 and L3 (agent/core/phases.py). ``default`` is what the relay
    is in at start-up; ``settle`` s pass between the relay moving and the offer returning;
    no two switches of one connector start less than ``min_interval`` s apart."""

    default: int = 3
    settle: float = 5.0
    min_interval: float = 300.0


@dataclass(frozen=True)
class StationConfig:
    vendor: str
    model: str
    connectors: tuple[ConnectorConfig, ...]
    serial_number: str | None = None
    firmware_version: str | None = None
    free_vend_id_tag: str | None = None  # None: tokens are authorized through OCPP
    authorize_timeout: float = 15.0  # s without an authorization answer: the offline rules


@dataclass(frozen=True)
class IdSource:
    """Where the core gets fresh ids: message refs and transaction refs."""

    next_ref: Callable[[], str]
    next_tx_ref: Callable[[], int]


@dataclass(frozen=True)
class Pending:
    """What a call in flight was for; the answer goes to the feature that made the call."""

    kind: str  # boot | heartbeat | status | authorize | start | meter | stop | ...
    connector_id: int = 0
    id_tag: str = ""
    purpose: str = ""  # authorize: connector | parent_stop | remote
    tx_ref: int = 0
    remote_start_id: int | None = None


@dataclass
class RegistrationState:
    status: RegistrationStatus | None = None
    link_up: bool = False
    booting: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is RegistrationStatus.ACCEPTED


class Context:
    def __init__(self, config: StationConfig, settings: Settings, ids: IdSource) -> None:
        self.config = config
        self.settings = settings
        self.connectors = {
            c.connector_id: Connector(
                c.connector_id, c.max_current, has_lock=c.has_lock, voltage=c.voltage,
                phases=c.phases, phase_switch=c.phase_switch is not None,
                active_phases=c.phase_switch.default if c.phase_switch else c.phases)
            for c in config.connectors
        }
        self.registration = RegistrationState()
        self.shutting_down = False
        self._ids = ids
        self._out: list[fx.Effect] = []
        self._now: Now | None = None
        self._pending: dict[str, Pending] = {}
        self._reads: dict[int, list[str]] = {}

    # --- one event ---------------------------------------------------------------------

    def begin(self, now: Now) -> None:
        self._out = []
        self._now = now

    def effects(self) -> list[fx.Effect]:
        """The effects of the event, in order; the list starts empty again."""
        out, self._out = self._out, []
        return out

    @property
    def now(self) -> Now:
        assert self._now is not None, "Station.handle() sets now"
        return self._now

    @property
    def online(self) -> bool:
        """Registered with the CSMS, and the link is up."""
        return self.registration.accepted and self.registration.link_up

    # --- what features do ----------------------------------------------------------------

    def emit(self, effect: fx.Effect) -> None:
        self._out.append(effect)

    def send(self, req: msg.OutboundReq, pending: Pending) -> str:
        ref = self._ids.next_ref()
        self._pending[ref] = pending
        self.emit(fx.Send(ref, req))
        return ref

    def calls_in_flight(self) -> list[Pending]:
        """What each call still awaiting its answer is for."""
        return list(self._pending.values())

    def answered(self, ref: str) -> Pending | None:
        """What the call ``ref`` was for; None for an answer already handled (or unknown)."""
        return self._pending.pop(ref, None)

    def read_meter(self, connector: Connector, purpose: str) -> None:
        """Ask for one meter read; every purpose waiting for it is served by the same read."""
        purposes = self._reads.setdefault(connector.connector_id, [])
        if not purposes:
            self.emit(fx.ReadMeter(connector.connector_id))
        if purpose not in purposes:
            purposes.append(purpose)

    def take_reads(self, connector_id: int) -> list[str]:
        """The purposes a meter read of ``connector_id`` serves; they are then forgotten."""
        return self._reads.pop(connector_id, [])

    def notice(self, connector_id: int, kind: str, detail: str = "") -> None:
        self.emit(fx.Notice(connector_id, kind, detail))

    def next_tx_ref(self) -> int:
        return self._ids.next_tx_ref()

    def targets(self, connector_id: int) -> list[Connector]:
        """Connector 0 means every connector."""
        if connector_id == 0:
            return list(self.connectors.values())
        return [self.connectors[connector_id]]
