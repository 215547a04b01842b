"""Control pilot driven by the Pi itself: hardware PWM out, pilot voltage in through an ADC
(role: ControlPilot). Needs a proper analog front end (±12 V driver, divider to 0..3.3 V).

A daemon thread samples a burst of pilot voltages every ``interval`` seconds, classifies it
(:mod:`hal.pilot_classifier`: thresholds, hysteresis, N-of-M, diode check) and reports each new
state through ``on_change`` on that thread, so the interlock opens the contactor without
waiting for the event loop. The offer goes out as an IEC 61851-1 duty rounded down
(:mod:`hal.duty`), changed at most once per ``change_interval`` while the PWM runs; a change
that must wait is applied by the sampling thread when it is due.

An ADC that fails ``failure_threshold`` bursts in a row is a lost pilot: the driver reports the
error through ``on_failure``, then E (the contactor opens); ``on_failure(None)`` when it reads
again. The Pi is not a safety controller: keep a hardware path that drops the contactor when
the pilot leaves C (DESIGN.md, Safety).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from hal.callbacks import PilotReports
from hal.duty import CHANGE_INTERVAL_S, OfferPacer, duty_ns_for_current, normalised_offer
from hal.errors import ConfigurationError, PilotError
from hal.gpio import AnalogInput
from hal.pilot_classifier import PilotClassifier
from hal.roles import PilotCallback, PilotState

logger = logging.getLogger(__name__)

FailureCallback = Callable[[BaseException | None], None]
VoltageSource = Callable[[], float]


class PwmOutput(Protocol):
    """What the pilot needs from a PWM channel (e.g. :class:`hal.pwm_sysfs.SysfsPwm`)."""

    @property
    def period_ns(self) -> int: ...

    def open(self, duty_ns: int = 0) -> None: ...

    def set_duty_ns(self, duty_ns: int) -> None: ...

    def close(self) -> None: ...


class PilotAdc:
    """Pilot voltage from an ADC channel: value 0..1 maps linearly onto ``low_v``..``high_v``.

    The defaults suit a front end that maps -12..+12 V onto the ADC's full range; calibrate
    them to the divider actually built.
    """

    def __init__(self, adc: AnalogInput, *, low_v: float = -12.0, high_v: float = 12.0) -> None:
        if not high_v > low_v:
            raise ConfigurationError(f"need high_v > low_v, not {low_v}..{high_v}")
        self._adc = adc
        self._low = low_v
        self._span = high_v - low_v

    def __call__(self) -> float:
        return self._low + float(self._adc.value) * self._span

    def close(self) -> None:
        self._adc.close()


class PwmPilot:
    """The pilot of one connector on ``pwm`` (owned: closed by :meth:`aclose`) and ``sample``.

    ``sample`` returns one pilot voltage in V (e.g. a :class:`PilotAdc`); it is called
    ``burst_size`` times per burst from the sampling thread. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        pwm: PwmOutput,
        sample: VoltageSource,
        *,
        classifier: PilotClassifier | None = None,
        burst_size: int = 100,
        interval: float = 0.005,
        change_interval: float = CHANGE_INTERVAL_S,
        failure_threshold: int = 3,
        on_failure: FailureCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst_size < 1 or interval < 0 or failure_threshold < 1:
            raise ConfigurationError("need burst_size >= 1, interval >= 0, failure_threshold >= 1")
        self._pwm = pwm
        self._sample = sample
        self._classifier = classifier or PilotClassifier()
        self._burst_size = burst_size
        self._interval = interval
        self._pacer = OfferPacer(change_interval)
        self._reports = PilotReports("pilot ADC", logger, failure_threshold, on_failure)
        self._clock = clock
        self._lock = threading.Lock()  # the PWM and the pacer: event loop vs sampling thread
        self._duty_ns = pwm.period_ns  # 100 %: steady +12 V, no offer
        self._opened = False  # the PWM is open: duties are written, not only kept
        self._generation = 0  # bumped on every duty change: a burst spanning one is dropped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def state(self) -> PilotState:
        """The last state reported to ``on_change``; E before the first one."""
        return self._reports.state

    @property
    def diode_seen(self) -> bool:
        """True once the EV's diode was seen this session (required before closing)."""
        return self._classifier.diode_seen

    @property
    def offered_current(self) -> float:
        """The offer in force (0 = no charging), after rounding and pacing."""
        return self._pacer.applied

    @property
    def duty_ns(self) -> int:
        return self._duty_ns

    async def start(self, on_change: PilotCallback) -> None:
        """Switch the PWM on, at the offer made before (100 %, no offer, without one), and
        start sampling."""
        if self._thread is not None or self._closed:
            raise RuntimeError("PwmPilot.start() called twice or after aclose()")
        self._reports.on_change = on_change
        await asyncio.to_thread(self._open)
        self._thread = threading.Thread(target=self._run, name="pwm-pilot", daemon=True)
        self._thread.start()

    async def set_offered_current(self, amps: float) -> None:
        """Ask to offer ``amps``; applied now or when the 5 s pace allows (see module doc).
        Before :meth:`start` the offer is kept and the PWM opens with it.

        Raises ConfigurationError for a negative current and PilotError when the PWM refuses.
        A stop (below 6 A) is written to the PWM every time, whatever the pacer believes.
        """
        with self._lock:
            offer = self._pacer.request(amps, self._clock())
            if offer is None and normalised_offer(amps) == 0:
                offer = 0.0
            if offer is not None:
                self._set_duty(offer)

    async def aclose(self) -> None:
        """Stop sampling, drive the pilot to -12 V (duty 0: EVSE not available) and release
        the PWM and the ADC. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        with self._lock:
            self._pwm.close()
        close = getattr(self._sample, "close", None)
        if callable(close):
            close()

    def _open(self) -> None:
        with self._lock:  # an offer now waits, then is written: none falls between
            self._pwm.open(self._duty_ns)
            self._opened = True

    def _set_duty(self, offer: float) -> None:
        duty = duty_ns_for_current(offer, self._pwm.period_ns)
        try:
            if self._opened:
                self._pwm.set_duty_ns(duty)
        except PilotError:
            self._pacer.reset()  # the EV never saw it: the next request must be written
            raise
        if duty != self._duty_ns:
            self._duty_ns = duty
            self._generation += 1
            logger.info("pilot: offering %s A (duty %s ns)", offer, duty)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._apply_due_offer()
            self._sample_once()
            self._stop.wait(self._interval)

    def _apply_due_offer(self) -> None:
        with self._lock:
            try:
                offer = self._pacer.poll(self._clock())
                if offer is not None:
                    self._set_duty(offer)
            except PilotError as exc:
                logger.error("pilot: could not apply the waiting offer: %s", exc)
                self._reports.failure(exc)

    def _sample_once(self) -> None:
        with self._lock:
            generation, duty = self._generation, self._duty_ns
        try:
            samples = [self._sample() for _ in range(self._burst_size)]
        except Exception as exc:  # an ADC/SPI failure of any kind is a lost pilot
            if self._reports.failed(PilotError(f"pilot ADC: {exc}")):
                self._classifier.reset()
            return
        if generation != self._generation:
            return  # the duty changed during the burst: its low plateau may be missing
        self._reports.answered()
        pwm_active = 0 < duty < self._pwm.period_ns
        state = self._classifier.feed(samples, pwm_active=pwm_active)
        if state is not None:
            self._reports.report(state)
