"""Smart charging (OCPP 1.6 SmartCharging profile): the installed profiles, and the limit in
force on each connector.

The CSMS installs profiles (SetChargingProfile), removes them (ClearChargingProfile) and reads
the result back (GetCompositeSchedule); a remote start may carry a TxProfile (TC_059). The
arithmetic is :mod:`agent.core.schedule`. After every event :meth:`SmartCharging.reconcile`
sets each connector's limit in force, ``Connector.limit_amps`` with its source: the lowest of
the composite schedule now, the local limit (:class:`agent.core.events.LocalLimitSet`) and the
connector's hardware maximum. It arms ONE timer (``schedule``) for the next moment a profile
may change the limit: nothing polls. The pilot's offer follows from the limit in
:func:`agent.core.connector.offered_current` (below 6 A: "no charging", the transaction goes
on, SuspendedEVSE).

Profiles are kept across restarts (``SaveChargingProfiles`` after every change); TxProfiles
end with their transaction. The local limit is kept too (``SaveLocalLimits``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.connector import MIN_OFFER, Connector, Transaction, drawn_phases
from agent.core.context import Context
from agent.core.schedule import (
    CHARGE_POINT_MAX,
    RECURRING,
    TX,
    ChargingProfile,
    Electrical,
    Limit,
    anchored,
    composite,
    limit_at,
    min_charging_rate,
    next_change,
)
from agent.core.settings import Settings
from agent.core.types import TxTrigger

log = logging.getLogger(__name__)

UNITS = {"Current": "A", "Power": "W"}  # ChargingScheduleAllowedChargingRateUnit items
# GetCompositeSchedule.req gives ``duration`` only as "Time in seconds. length of requested
# schedule" (OCPP 1.6, an integer without bound); the answer's ChargingSchedule carries its
# own ``duration``, so the charger computes at most this much and reports what it computed.
COMPOSITE_MAX_SECONDS = 7 * 86400
COMPOSITE_MAX_PERIODS = 1000  # periods in one answer; the duration ends where they stop
# The schedule timer runs on the monotonic clock, its boundary is wall-clock time: a Pi
# without a real-time clock steps its wall clock after boot (NTP). At most an hour between
# two looks, so a step shifts a boundary by an hour at most.
SCHEDULE_TIMER_MAX = 3600.0


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class SmartCharging:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._profiles: dict[int, ChargingProfile] = {}
        self._armed: datetime | None = None
        self._arm_key: object = None  # what the armed boundary was computed from
        self._version = 0  # counts changes of the installed profiles
        self._tx_seen: dict[int, int | None] = {}  # connector -> tx_ref at the last reconcile
        # A remote start's TxProfile, by connector, until its transaction begins (or a deadline)
        self._waiting: dict[int, _Waiting] = {}
        self._before_set: dict[int, ChargingProfile] = {}  # what ChargingProfilesNotSaved restores

    def restore(self, profiles: list[ChargingProfile]) -> None:
        """The profiles kept across restarts; before the Started event."""
        self._profiles = {p.profile_id: p for p in profiles}

    def on_started(self) -> None:
        """A TxProfile whose transaction did not survive the restart is over."""
        self._drop_tx_profiles({cid for cid, c in self._ctx.connectors.items()
                                if c.transaction is None})

    @property
    def profiles(self) -> tuple[ChargingProfile, ...]:
        return tuple(sorted(self._profiles.values(), key=lambda p: p.profile_id))

    # --- what the CSMS asks --------------------------------------------------------------

    def set_profile(self, request: msg.CsmsSetChargingProfile) -> msg.StatusResult:
        """Accepted, or Rejected for a profile the charger cannot take (see _refusal)."""
        profile = anchored(request.profile, _whole_seconds(self._ctx.now.utc))
        kept = {pid: p for pid, p in self._profiles.items() if not _replaces(profile, p)}
        refusal = self._refusal(profile)
        if refusal is None and len(kept) >= self._ctx.settings.int("MaxChargingProfilesInstalled"):
            refusal = "MaxChargingProfilesInstalled reached"
        if refusal is not None:
            log.info("charging profile %s (%s) refused: %s", profile.profile_id,
                     profile.purpose, refusal)
            return msg.StatusResult("Rejected")
        kept[profile.profile_id] = profile
        self._before_set, self._profiles = self._profiles, kept
        self._save()
        return msg.StatusResult("Accepted")

    def on_not_saved(self, event: ev.ChargingProfilesNotSaved) -> None:
        """The store refused the profiles after a SetChargingProfile: the profile is taken
        back (the runtime answers Rejected), so the charger never applies a profile that a
        restart would lose while the CSMS believes it installed."""
        self._profiles = self._before_set
        self._version += 1

    def _refusal(self, profile: ChargingProfile) -> str | None:
        """Why the profile cannot be installed; None when it can."""
        cid = profile.connector_id
        if cid != 0 and cid not in self._ctx.connectors:
            return "no such connector"
        if profile.purpose == CHARGE_POINT_MAX and cid != 0:
            return "ChargePointMaxProfile only on connector 0"
        if profile.purpose == TX and not self._tx_matches(profile):
            return "TxProfile without its transaction"  # TC_058_1, TC_058_2
        return self._beyond_limits(profile)

    def _beyond_limits(self, profile: ChargingProfile) -> str | None:
        """What the configuration keys do not allow, if anything."""
        settings = self._ctx.settings
        if profile.stack_level > settings.int("ChargeProfileMaxStackLevel"):
            return "stack level too high"
        if len(profile.schedule.periods) > settings.int("ChargingScheduleMaxPeriods"):
            return "too many periods"
        if profile.schedule.unit not in allowed_units(settings):
            return "unit not allowed"
        if profile.kind == RECURRING and profile.recurrency is None:
            return "recurring without recurrency"
        return None

    def _tx_matches(self, profile: ChargingProfile) -> bool:
        connector = self._ctx.connectors.get(profile.connector_id)
        tx = connector.transaction if connector is not None else None
        if tx is None or tx.stopping is not None:
            return False
        return profile.transaction_id is None or profile.transaction_id == tx.transaction_id

    def clear(self, request: msg.CsmsClearChargingProfile) -> msg.StatusResult:
        """Accepted when a profile matched (and is gone), else Unknown."""
        matches = _clear_filter(request)
        gone = [pid for pid, p in self._profiles.items() if matches(p)]
        for pid in gone:
            del self._profiles[pid]
        if not gone:
            return msg.StatusResult("Unknown")
        self._save()
        return msg.StatusResult("Accepted")

    def composite_schedule(self, request: msg.CsmsGetCompositeSchedule
                           ) -> msg.CompositeScheduleResult:
        cid = request.connector_id
        unit = request.unit or "A"
        if (cid != 0 and cid not in self._ctx.connectors) or unit not in UNITS.values():
            return msg.CompositeScheduleResult("Rejected")
        start = _whole_seconds(self._ctx.now.utc)
        stack, tx_start, amps, electrical = self._composite_inputs(cid)
        ceiling = electrical.convert(amps, "A", unit, None)
        duration = max(0, min(request.duration, COMPOSITE_MAX_SECONDS))
        periods = composite(stack, start, duration, tx_start or start, unit, electrical,
                            ceiling)
        if len(periods) > COMPOSITE_MAX_PERIODS:
            duration = periods[COMPOSITE_MAX_PERIODS].start_period
            periods = periods[:COMPOSITE_MAX_PERIODS]
        rate = min_charging_rate(stack, start, tx_start or start, unit, electrical)
        return msg.CompositeScheduleResult("Accepted", cid, start, duration, unit, periods,
                                           rate)

    def _composite_inputs(self, cid: int) -> tuple[list[ChargingProfile], datetime | None,
                                                   float, Electrical]:
        """The stack, transaction start, ceiling (A) and electrical facts of a connector; for
        connector 0 the charger's: its ChargePointMaxProfiles under all connectors' maximum."""
        connectors = self._ctx.connectors
        if cid != 0:
            connector = connectors[cid]
            return (self._stack(connector), _tx_start(connector), _ceiling_amps(connector),
                    _electrical(connector))
        stack = [p for p in self._profiles.values()
                 if p.connector_id == 0 and p.purpose == CHARGE_POINT_MAX]
        supply = Electrical(next(iter(connectors.values())).voltage)
        return stack, None, sum(c.max_current for c in connectors.values()), supply

    def accepts_remote(self, profile: ChargingProfile | None) -> bool:
        """RemoteStartTransaction may carry only a TxProfile (TC_060) within the keys."""
        return profile is None or (profile.purpose == TX and self._beyond_limits(profile) is None)

    def install_for_remote_start(self, connector_id: int, profile: ChargingProfile,
                                 id_tag: str, remote_start_id: int | None = None) -> None:
        """The remote start's TxProfile waits for the transaction about to begin on the
        connector (it has no transactionId yet) and is installed for that transaction only:
        the remote start's id_tag, started remotely. It is dropped as soon as the remote start
        is no longer on its way (its authorization refused, the plug-in timed out, another
        transaction began there), and at the latest after ConnectionTimeOut plus the
        authorization's answer, so it never applies to someone else's transaction."""
        profile = ChargingProfile(profile.profile_id, connector_id, profile.stack_level, TX,
                                  profile.kind, profile.schedule, profile.recurrency,
                                  profile.valid_from, profile.valid_to, None)
        wait = self._ctx.settings.int("ConnectionTimeOut") + self._ctx.config.authorize_timeout
        self._waiting[connector_id] = _Waiting(profile, self._ctx.now.mono + wait, id_tag,
                                               remote_start_id)

    def _bind_waiting(self) -> None:
        for cid, waiting in list(self._waiting.items()):
            connector = self._ctx.connectors[cid]
            tx = connector.transaction
            if tx is not None and waiting.started(tx):
                del self._waiting[cid]
                installed = anchored(waiting.profile, _whole_seconds(self._ctx.now.utc))
                kept = {pid: p for pid, p in self._profiles.items()
                        if not _replaces(installed, p)}
                self._profiles = {**kept, installed.profile_id: installed}
                self._save()
            elif (tx is not None or self._ctx.now.mono > waiting.deadline
                  or not self._on_its_way(connector, waiting)):
                del self._waiting[cid]

    def _on_its_way(self, connector: Connector, waiting: _Waiting) -> bool:
        """The remote start still may begin: its authorization is asked, or it was granted
        and waits for the plug-in."""
        auth = connector.authorization
        if auth is not None and auth.remote and auth.id_tag == waiting.id_tag:
            return True
        return any(p.kind == "authorize" and p.purpose == "remote"
                   and p.connector_id == connector.connector_id and p.id_tag == waiting.id_tag
                   for p in self._ctx.calls_in_flight())

    # --- the local limit ---------------------------------------------------------------

    def on_local_limit(self, event: ev.LocalLimitSet) -> None:
        """Set or clear the local limit, and save it (``SaveLocalLimits``): it survives a
        restart. A repeat is saved too; the store writes only what differs from its row."""
        for connector in self._ctx.targets(event.connector_id):
            connector.local_limit = (None if event.amps is None
                                     else (max(0.0, event.amps), event.source))
            self._ctx.emit(fx.SaveLocalLimits(connector.connector_id, connector.local_requests))

    # --- the limit in force, after every event -------------------------------------------

    def reconcile(self) -> None:
        self._end_tx_profiles()
        self._bind_waiting()
        # All computed before any is set: a fault keeps every previous limit (Station).
        computed: list[tuple[Connector, Limit | None]] = [
            (c, limit_at(self._stack(c), self._ctx.now.utc, _tx_start(c), "A", _electrical(c)))
            for c in self._ctx.connectors.values()]
        limits = [self._limit_now(c, found) for c, found in computed]
        shares = self._station_shares()
        for (connector, found), (amps, source) in zip(computed, limits, strict=True):
            share = shares.get(connector.connector_id)
            if share is not None and share < amps:
                amps, source = share, CHARGE_POINT_MAX
            connector.limit_amps, connector.limit_source = amps, source
            # What agent/core/phases.py decides the phases from: the period's numberPhases,
            # and the profile's limit in W when the profile in force is in W.
            connector.limit_phases = found.number_phases if found is not None else None
            connector.limit_watts = found.watts if found is not None else None
        self._arm()

    def _limit_now(self, connector: Connector, found: Limit | None) -> tuple[float, str]:
        candidates = [(connector.max_current, "hardware")]
        if found is not None:
            candidates.append((found.value, found.source))
        if connector.local_limit is not None:
            amps, who = connector.local_limit
            candidates.append((amps, f"local:{who}"))
        return min(candidates, key=lambda c: c[0])

    def _station_shares(self) -> dict[int, float]:
        """Each running transaction's share (A) of the ChargePointMaxProfile in force, which
        limits "the power or current to be shared by all connectors of the Charge Point"
        (OCPP 1.6 section 3.13.1): equal shares (of the power, for a limit in W), and never a
        share below 6 A to more transactions than fit: those that began last get 0 (they
        pause, SuspendedEVSE) until a share of 6 A is free for them."""
        station = [p for p in self._profiles.values() if p.purpose == CHARGE_POINT_MAX]
        running = sorted((c for c in self._ctx.connectors.values()
                          if c.transaction is not None and c.transaction.stopping is None),
                         key=lambda c: (_started_mono(c), c.connector_id))
        if not station or len(running) < 2:
            return {}  # one transaction has the whole limit (the connector's own stack)
        whole: list[float] = []  # the station's limit in each connector's amps
        for connector in running:
            found = limit_at(station, self._ctx.now.utc, _tx_start(connector), "A",
                             _electrical(connector))
            if found is None:
                return {}
            whole.append(found.value)
        fit = next((k for k in range(len(running), 0, -1)
                    if all(amps / k >= MIN_OFFER for amps in whole[:k])), len(running))
        return {c.connector_id: (amps / fit if i < fit else 0.0)
                for i, (c, amps) in enumerate(zip(running, whole, strict=True))}

    def _stack(self, connector: Connector) -> list[ChargingProfile]:
        """The profiles that apply to the connector: the charger's and its own; TxProfiles
        of its running transaction only."""
        cid = connector.connector_id
        tx = connector.transaction
        stack: list[ChargingProfile] = []
        for profile in self._profiles.values():
            if profile.connector_id not in (0, cid):
                continue
            if profile.purpose == TX and (tx is None or profile.transaction_id not in (
                    None, tx.transaction_id)):
                continue
            stack.append(profile)
        return stack

    def _end_tx_profiles(self) -> None:
        """TxProfiles end with their transaction (OCPP 1.6 3.13.2)."""
        ended: list[int] = []
        for cid, connector in self._ctx.connectors.items():
            tx_ref = connector.transaction.tx_ref if connector.transaction else None
            before = self._tx_seen.get(cid, tx_ref)
            self._tx_seen[cid] = tx_ref
            if before is not None and before != tx_ref:
                ended.append(cid)
        self._drop_tx_profiles(set(ended))

    def _drop_tx_profiles(self, connector_ids: set[int]) -> None:
        gone = [pid for pid, p in self._profiles.items()
                if p.purpose == TX and p.connector_id in connector_ids]
        for pid in gone:
            del self._profiles[pid]
        if gone:
            self._save()

    def _arm(self) -> None:
        """Arm the ``schedule`` timer for the next boundary; recomputed only when the profiles,
        a transaction or the timer changed (next_change is the costly part of reconcile)."""
        key = (self._version, tuple(
            (c.transaction.tx_ref, c.transaction.transaction_id, c.transaction.started_at)
            if c.transaction else None for c in self._ctx.connectors.values()))
        if key == self._arm_key:
            return
        self._arm_key = key
        now = self._ctx.now.utc
        changes = [next_change(self._stack(c), now, _tx_start(c))
                   for c in self._ctx.connectors.values()]
        upcoming = min((c for c in changes if c is not None), default=None)
        if upcoming == self._armed:
            return
        self._armed = upcoming
        if upcoming is None:
            self._ctx.emit(fx.CancelTimer("schedule"))
        else:
            delay = (upcoming - now) / timedelta(seconds=1)
            self._ctx.emit(fx.StartTimer("schedule", min(max(0.0, delay), SCHEDULE_TIMER_MAX)))

    def on_schedule_timer(self, arg: str) -> None:
        """A profile boundary: the reconcile after this event applies it and re-arms."""
        self._armed = None
        self._arm_key = None

    def _save(self) -> None:
        self._version += 1
        self._ctx.emit(fx.SaveChargingProfiles(self.profiles))


@dataclass(frozen=True)
class _Waiting:
    """A remote start's TxProfile before its transaction begins."""

    profile: ChargingProfile
    deadline: float  # monotonic
    id_tag: str
    remote_start_id: int | None

    def started(self, tx: Transaction) -> bool:
        """``tx`` is this remote start's transaction."""
        return (tx.trigger is TxTrigger.REMOTE_START and tx.id_tag == self.id_tag
                and tx.remote_start_id == self.remote_start_id)


def _started_mono(connector: Connector) -> float:
    tx = connector.transaction
    return tx.started_mono if tx is not None else 0.0


def _ceiling_amps(connector: Connector) -> float:
    """The hardware's maximum under the local limit: what a composite schedule is capped by."""
    local = connector.local_limit
    return min(connector.max_current, local[0]) if local else connector.max_current


def _tx_start(connector: Connector) -> datetime | None:
    """When the running transaction started, in whole seconds (as the composite's start)."""
    tx = connector.transaction
    started = tx.started_at if tx is not None else None
    return _whole_seconds(started) if started is not None else None


def _electrical(connector: Connector) -> Electrical:
    return Electrical(connector.voltage, drawn_phases(connector))


def allowed_units(settings: Settings) -> set[str]:
    return {UNITS[item] for item in settings.csl("ChargingScheduleAllowedChargingRateUnit")
            if item in UNITS}


def _replaces(new: ChargingProfile, old: ChargingProfile) -> bool:
    """OCPP 1.6 3.13.2: the same id, or the same purpose and stack level on the same
    connector, replaces an installed profile."""
    return new.profile_id == old.profile_id or (
        (new.purpose, new.stack_level, new.connector_id)
        == (old.purpose, old.stack_level, old.connector_id))


def _clear_filter(request: msg.CsmsClearChargingProfile) -> Callable[[ChargingProfile], bool]:
    if request.profile_id is not None:
        return lambda p: p.profile_id == request.profile_id

    def matches(profile: ChargingProfile) -> bool:
        return ((request.connector_id is None or profile.connector_id == request.connector_id)
                and (request.purpose is None or profile.purpose == request.purpose)
                and (request.stack_level is None or profile.stack_level == request.stack_level))

    return matches
