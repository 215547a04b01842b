"""Charging profiles and the composite schedule (OCPP 1.6 section 3.13, Smart Charging).

Pure functions over :class:`ChargingProfile` values: no clock, no I/O. The caller passes the
moment, the start of the running transaction, and the electrical facts that turn watts into
amps and back.

The rules (OCPP 1.6 sections 3.13.1-3.13.4, 5.16 and 7.8-7.13):

* a profile is in force at ``t`` when ``valid_from <= t < valid_to`` (each optional), its
  schedule has started (``t >= start``) and has not run out (``t < start + duration``), and
  one of its periods has begun (``start_period <= t - start``);
* the start of the schedule: ``start_schedule`` for an Absolute profile, the start of the
  transaction for a Relative one, the latest daily/weekly repetition of ``start_schedule`` for
  a Recurring one;
* within one purpose the profile of the highest stack level in force wins (on equal levels a
  profile of the connector wins over one of connector 0);
* a TxProfile overrules the TxDefaultProfile for the whole transaction it belongs to
  (3.13.2: "overrules ... for the duration of the running transaction"): while the caller
  passes a TxProfile, TxDefaultProfiles are ignored, even where the TxProfile has run out
  (TC_066 expects that);
* a ChargePointMaxProfile caps the result.

Units: 1.6 defines power as P = U * I * phases (section 7.13 numberPhases, default 3). The
caller gives the voltage and, when known, the phases the EV draws; otherwise a period's
``number_phases`` (or 3) is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX)
ABSOLUTE, RECURRING, RELATIVE = "Absolute", "Recurring", "Relative"
KINDS = (ABSOLUTE, RECURRING, RELATIVE)
RECURRENCY = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}
DEFAULT_PHASES = 3  # 1.6 section 7.13: numberPhases absent means 3


@dataclass(frozen=True)
class SchedulePeriod:
    start_period: int  # seconds from the start of the schedule
    limit: float  # in the schedule's unit, A or W
    number_phases: int | None = None


@dataclass(frozen=True)
class ChargingSchedule:
    unit: str  # "A" or "W"
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None  # seconds; None: the last period goes on
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True)
class ChargingProfile:
    profile_id: int
    connector_id: int  # where it was installed; 0: the charger
    stack_level: int
    purpose: str  # one of PURPOSES
    kind: str  # one of KINDS
    schedule: ChargingSchedule
    recurrency: str | None = None  # Daily | Weekly, for Recurring
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None  # a TxProfile's transaction


@dataclass(frozen=True)
class Electrical:
    """How watts become amps: P = U * I * phases. ``phases`` None: each period's own."""

    voltage: float = 230.0
    phases: int | None = None

    def convert(self, limit: float, unit: str, to_unit: str, period_phases: int | None) -> float:
        if unit == to_unit:
            return limit
        phases = self.phases or period_phases or DEFAULT_PHASES
        watts_per_amp = self.voltage * phases
        return limit * watts_per_amp if to_unit == "W" else limit / watts_per_amp


@dataclass(frozen=True)
class Limit:
    """A limit in force: ``value`` in the unit asked, ``source`` the purpose that set it;
    ``watts`` the period's own limit when its profile is in W (None for one in A)."""

    value: float
    source: str
    number_phases: int | None = None
    watts: float | None = None


@dataclass(frozen=True)
class CompositePeriod:
    start_period: int  # seconds from the composite's start
    limit: float
    number_phases: int | None = None


# --- one profile -------------------------------------------------------------------------


def schedule_start(profile: ChargingProfile, t: datetime, tx_start: datetime | None
                   ) -> datetime | None:
    """When the profile's schedule that covers ``t`` began; None when it has none yet."""
    schedule = profile.schedule
    if profile.kind == RELATIVE:
        return tx_start
    base = schedule.start_schedule
    if base is None or profile.kind == ABSOLUTE or t < base:
        return base
    cycle = RECURRENCY.get(profile.recurrency or "Daily", RECURRENCY["Daily"])
    return base + cycle * ((t - base) // cycle)


def _valid(profile: ChargingProfile, t: datetime) -> bool:
    if profile.valid_from is not None and t < profile.valid_from:
        return False
    return profile.valid_to is None or t < profile.valid_to


def period_at(profile: ChargingProfile, t: datetime, tx_start: datetime | None
              ) -> SchedulePeriod | None:
    """The profile's period in force at ``t``, or None."""
    start = schedule_start(profile, t, tx_start)
    if start is None or t < start or not _valid(profile, t):
        return None
    offset = (t - start).total_seconds()
    duration = profile.schedule.duration
    if duration is not None and offset >= duration:
        return None
    current = None
    for period in profile.schedule.periods:
        if period.start_period <= offset and (current is None
                                              or period.start_period >= current.start_period):
            current = period
    return current


# --- a stack of profiles -----------------------------------------------------------------


def _winner(profiles: Iterable[ChargingProfile], purpose: str, t: datetime,
            tx_start: datetime | None) -> tuple[ChargingProfile, SchedulePeriod] | None:
    best: tuple[ChargingProfile, SchedulePeriod] | None = None
    for profile in profiles:
        if profile.purpose != purpose:
            continue
        period = period_at(profile, t, tx_start)
        if period is not None and (best is None or _rank(profile) > _rank(best[0])):
            best = (profile, period)
    return best


def _rank(profile: ChargingProfile) -> tuple[int, bool]:
    return profile.stack_level, profile.connector_id != 0


def limit_at(profiles: Iterable[ChargingProfile], t: datetime, tx_start: datetime | None,
             unit: str, electrical: Electrical) -> Limit | None:
    """The limit in force at ``t`` for the connector whose profiles these are (connector 0's
    and its own; TxProfiles only of its running transaction), in ``unit``; None: no limit."""
    stack = list(profiles)
    tx_purpose = TX if any(p.purpose == TX for p in stack) else TX_DEFAULT
    found: Limit | None = None
    for purpose in (tx_purpose, CHARGE_POINT_MAX):
        winner = _winner(stack, purpose, t, tx_start)
        if winner is None:
            continue
        profile, period = winner
        value = electrical.convert(period.limit, profile.schedule.unit, unit,
                                   period.number_phases)
        if found is None or value < found.value:
            watts = period.limit if profile.schedule.unit == "W" else None
            found = Limit(value, purpose, period.number_phases, watts)
    return found


def min_charging_rate(profiles: Iterable[ChargingProfile], t: datetime,
                      tx_start: datetime | None, unit: str, electrical: Electrical
                      ) -> float | None:
    """The minChargingRate of the profile in force at ``t`` (the transaction's purpose first,
    then the ChargePointMaxProfile), in ``unit``; None when it gives none.

    OCPP 1.6 section 7.13 (ChargingSchedule.minChargingRate): "Minimum charging rate supported
    by the EV. [...] This parameter is intended to be used by a local smart charging algorithm
    to optimize the power allocation for in the case a charging process is inefficient at lower
    charging rates." It asks nothing of a single connector's offer; the charger reports it back
    in the composite schedule (GetCompositeSchedule.conf carries a ChargingSchedule)."""
    stack = list(profiles)
    tx_purpose = TX if any(p.purpose == TX for p in stack) else TX_DEFAULT
    for purpose in (tx_purpose, CHARGE_POINT_MAX):
        winner = _winner(stack, purpose, t, tx_start)
        if winner is None:
            continue
        profile, period = winner
        rate = profile.schedule.min_charging_rate
        if rate is not None:
            return electrical.convert(rate, profile.schedule.unit, unit, period.number_phases)
    return None


def _boundaries(profile: ChargingProfile, lo: datetime, hi: datetime,
                tx_start: datetime | None) -> Iterator[datetime]:
    """The moments where the profile's limit may change, for the repetitions covering
    [lo, hi] and the next one (callers keep those they need)."""
    yield from (m for m in (profile.valid_from, profile.valid_to) if m is not None)
    for start in _starts(profile, lo, hi, tx_start):
        yield start  # a repetition starts again before its first period (if that is later)
        offsets = [p.start_period for p in profile.schedule.periods]
        if profile.schedule.duration is not None:
            offsets.append(profile.schedule.duration)
        yield from (m for m in (_after(start, s) for s in offsets) if m is not None)


def _after(start: datetime, seconds: float) -> datetime | None:
    """``start`` plus ``seconds``; None past what a datetime holds (year 9999): OCPP 1.6
    durations and startPeriods are unbounded integers, and such a moment never comes."""
    try:
        return start + timedelta(seconds=seconds)
    except OverflowError:
        return None


def _starts(profile: ChargingProfile, lo: datetime, hi: datetime,
            tx_start: datetime | None) -> Iterator[datetime]:
    first = schedule_start(profile, lo, tx_start)
    if first is None:
        return
    if profile.kind != RECURRING:
        yield first
        return
    cycle = RECURRENCY.get(profile.recurrency or "Daily", RECURRENCY["Daily"])
    start = first
    while start <= hi:
        yield start
        start += cycle
    yield start  # the first repetition after ``hi``: a boundary after any moment up to hi


def next_change(profiles: Iterable[ChargingProfile], t: datetime, tx_start: datetime | None,
                horizon: timedelta = timedelta(days=8)) -> datetime | None:
    """The first moment after ``t`` where the limit may change (a boundary of some profile),
    at the latest ``t + horizon``; None when nothing changes. Arm one timer for it."""
    hi = t + horizon  # a repetition's boundaries up to the next one's start suffice
    later = [m for p in profiles for m in _boundaries(p, t, t, tx_start) if t < m]
    # A boundary beyond the horizon: look again at the horizon (the timer is the only
    # thing that re-arms the next one).
    return min(min(later), hi) if later else None


def composite(profiles: Iterable[ChargingProfile], start: datetime, duration: int,
              tx_start: datetime | None, unit: str, electrical: Electrical,
              ceiling: float) -> tuple[CompositePeriod, ...]:
    """The composite schedule over [start, start + duration) in ``unit``, as periods whose
    limits differ from their predecessor's; ``ceiling`` (the hardware's maximum, in ``unit``)
    caps every period and stands where no profile limits."""
    stack = list(profiles)
    end = start + timedelta(seconds=duration)
    moments = {start} | {m for p in stack for m in _boundaries(p, start, end, tx_start)
                         if start < m < end}
    periods: list[CompositePeriod] = []
    for moment in sorted(moments):
        found = limit_at(stack, moment, tx_start, unit, electrical)
        value, phases = _capped(found, ceiling)
        if (periods and (periods[-1].limit, periods[-1].number_phases)
                             == (value, phases)):
            continue
        offset = math.ceil((moment - start).total_seconds())
        periods.append(CompositePeriod(offset, value, phases))
    return tuple(periods)


def _capped(found: Limit | None, ceiling: float) -> tuple[float, int | None]:
    if found is None:
        return ceiling, None
    if ceiling < found.value:
        return ceiling, found.number_phases
    return found.value, found.number_phases


def anchored(profile: ChargingProfile, received: datetime) -> ChargingProfile:
    """An Absolute (or Recurring) profile without startSchedule starts when it was received
    (1.6 section 7.8 leaves it open; the OCTT cases count from the SetChargingProfile);
    Relative profiles start with their transaction and are returned unchanged."""
    schedule = profile.schedule
    if profile.kind == RELATIVE or schedule.start_schedule is not None:
        return profile
    return replace(profile, schedule=replace(schedule, start_schedule=received))
