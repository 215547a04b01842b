"""IEC 61851-1 control pilot PWM: duty cycle <-> maximum current, and the pace of offer changes.

Pure arithmetic, no I/O, no clock (hardware.md §1.2, §1.3):

======================  ==========================================
duty D                  current the EV may draw
======================  ==========================================
D < 8 %                 none (E/F below 3 %, 5 % = digital comms)
8 % <= D < 10 %         6 A
10 % <= D <= 85 %       D x 0.6 A
85 % < D <= 96 %        (D - 64) x 2.5 A
96 % < D <= 97 %        80 A
D > 97 %                none (100 % = steady +12 V: state x1)
======================  ==========================================

The EVSE side inverts it: D = I / 0.6 for 6..51 A, D = I / 2.5 + 64 above. Duties are computed
exactly (``fractions.Fraction``) and rounded *down* to whole nanoseconds of the period, so the
EV is never told it may draw more than was asked for. An offer below 6 A is "no charging" and
becomes 100 % duty (the pilot stays at +12 V; the EV must stop drawing).

:class:`OfferPacer` keeps offer changes to at most one per 5 s while the PWM runs, as EVerest
does ("IEC allows PWM updates only every 5 s"); stopping, and starting from a stop, are never
delayed.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hal.errors import ConfigurationError

PERIOD_NS = 1_000_000  # 1 kHz
MIN_CURRENT_A = 6
MAX_CURRENT_A = 80
NO_CHARGING_PERCENT = 100  # state x1: no PWM, steady +12 V
CHANGE_INTERVAL_S = 5.0

_LOW_BAND_TOP_A = 51  # D x 0.6 up to 51 A (85 %), (D - 64) x 2.5 above


def normalised_offer(amps: float) -> float:
    """The offer the pilot can signal: 0 below 6 A (no charging), at most 80 A.

    Raises :class:`ConfigurationError` for a negative or NaN current.
    """
    if math.isnan(amps) or amps < 0:
        raise ConfigurationError(f"offered current must be >= 0 A, not {amps}")
    if amps < MIN_CURRENT_A:
        return 0.0
    return float(min(amps, MAX_CURRENT_A))


def duty_percent_for_current(amps: float) -> Fraction:
    """The exact duty (percent) that signals ``amps``; 100 for "no charging" (below 6 A)."""
    offer = Fraction(normalised_offer(amps))
    if offer == 0:
        return Fraction(NO_CHARGING_PERCENT)
    if offer <= _LOW_BAND_TOP_A:
        return offer / Fraction(6, 10)
    return offer / Fraction(5, 2) + 64


def duty_ns_for_current(amps: float, period_ns: int = PERIOD_NS) -> int:
    """The PWM high time for ``amps``, rounded down to whole ns (never more than asked)."""
    if period_ns <= 0:
        raise ConfigurationError(f"PWM period must be > 0 ns, not {period_ns}")
    return math.floor(duty_percent_for_current(amps) * period_ns / 100)


def current_for_duty_percent(duty: Fraction | float) -> Fraction:
    """The most an EV may draw for ``duty`` percent, per the table above; 0 = no charging."""
    d = Fraction(duty)
    if d < 8 or d > 97:
        return Fraction(0)
    if d < 10:
        return Fraction(MIN_CURRENT_A)
    if d <= 85:
        return d * Fraction(6, 10)
    if d <= 96:
        return (d - 64) * Fraction(5, 2)
    return Fraction(MAX_CURRENT_A)


def advertised_current(duty_ns: int, period_ns: int = PERIOD_NS) -> float:
    """What the EV reads from a high time of ``duty_ns`` in ``period_ns``, in A."""
    return float(current_for_duty_percent(Fraction(duty_ns * 100, period_ns)))


class OfferPacer:
    """Paces offer changes: at most one per ``interval`` seconds while the PWM runs.

    The caller asks with :meth:`request` and applies what it returns; a change that must wait
    is kept (only the latest wish) and handed out by :meth:`poll` once it is due. Going to
    "no charging" and the first offer after it are applied at once: they switch the PWM off
    and on rather than change it. Times are monotonic seconds from the caller.
    """

    def __init__(self, interval: float = CHANGE_INTERVAL_S) -> None:
        if interval < 0 or math.isnan(interval):
            raise ConfigurationError(f"offer change interval must be >= 0 s, not {interval}")
        self._interval = interval
        self._applied = 0.0
        self._changed_at = -math.inf
        self._pending: float | None = None

    @property
    def applied(self) -> float:
        """The offer in force (normalised: 0 or 6..80 A)."""
        return self._applied

    @property
    def pending(self) -> float | None:
        """The offer waiting for its turn, if any."""
        return self._pending

    @property
    def due_at(self) -> float | None:
        """When the pending offer may be applied, or None when nothing waits."""
        return None if self._pending is None else self._changed_at + self._interval

    def request(self, amps: float, now: float) -> float | None:
        """Ask for ``amps``; returns the offer to apply now, or None (unchanged, or waiting)."""
        offer = normalised_offer(amps)
        if offer == self._applied:
            self._pending = None
            return None
        if offer == 0 or self._applied == 0 or now - self._changed_at >= self._interval:
            return self._apply(offer, now)
        self._pending = offer
        return None

    def reset(self) -> None:
        """Forget what is in force (the output failed to take it): the next request applies
        at once, as after a stop."""
        self._applied = 0.0
        self._changed_at = -math.inf
        self._pending = None

    def poll(self, now: float) -> float | None:
        """The waiting offer if it is due at ``now`` (then it is in force), else None."""
        due = self.due_at
        if self._pending is None or due is None or now < due:
            return None
        return self._apply(self._pending, now)

    def _apply(self, offer: float, now: float) -> float:
        self._applied = offer
        self._changed_at = now
        self._pending = None
        return offer
