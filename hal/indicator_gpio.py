"""LED, RGB LED and buzzer feedback for the driver at the charger (role: Indicator).

Any combination may be wired: a single LED, an RGB LED, a buzzer. Each :class:`Indication`
has one pattern per device (the table :data:`PATTERNS`); gpiozero runs blinking and beeping on
its own background threads. ``accepted`` and ``rejected`` are short signals: once they have
played, the indicator goes back to the last lasting indication.

:meth:`GpioIndicator.show` never blocks and never raises for a hardware problem: a charger must
not stop because an LED failed; the error is logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from hal.gpio import (
    Beeper,
    Color,
    ColorLight,
    Light,
    Pin,
    PinFactory,
    buzzer,
    led,
    rgb_led,
)
from hal.roles import Indication

logger = logging.getLogger(__name__)

OFF: Color = (0, 0, 0)
RED: Color = (1, 0, 0)
GREEN: Color = (0, 1, 0)
BLUE: Color = (0, 0, 1)
YELLOW: Color = (1, 1, 0)
SIGNAL_MARGIN_S = 0.1


@dataclass(frozen=True)
class Blink:
    """``n`` flashes of ``on_s`` on and ``off_s`` off (``n`` None: forever; ``on_s`` None:
    steady on)."""

    on_s: float | None = None
    off_s: float = 0.0
    n: int | None = None

    @property
    def duration(self) -> float:
        """How long a finite pattern plays (0 for steady or endless ones)."""
        if self.on_s is None or self.n is None:
            return 0.0
        return self.n * (self.on_s + self.off_s)


@dataclass(frozen=True)
class Pattern:
    color: Color  # RGB LED colour; OFF = dark
    rgb: Blink
    led: Blink | None  # None = single LED off
    beep: Blink | None  # None = silent


STEADY = Blink()
PATTERNS: dict[Indication, Pattern] = {
    Indication.IDLE: Pattern(GREEN, STEADY, STEADY, None),
    Indication.ACCEPTED: Pattern(GREEN, Blink(0.15, 0.15, 2), Blink(0.15, 0.15, 2),
                                 Blink(0.1, 0.0, 1)),
    Indication.REJECTED: Pattern(RED, Blink(0.15, 0.15, 3), Blink(0.1, 0.1, 5),
                                 Blink(0.1, 0.1, 3)),
    Indication.CHARGING: Pattern(BLUE, STEADY, Blink(1.0, 1.0), None),
    Indication.FAULT: Pattern(RED, STEADY, Blink(0.2, 0.2), Blink(0.5, 0.0, 1)),
    Indication.OFFLINE: Pattern(YELLOW, Blink(0.5, 1.5), Blink(0.2, 1.8), None),
}


class GpioIndicator:
    """Whatever of ``led_pin``, ``rgb_pins`` (red, green, blue) and ``buzzer_pin`` is wired.

    ``rgb_pwm=True`` needs PWM-capable pins and dims colours; the default switches each colour
    fully on or off, which every pin factory supports.
    """

    def __init__(
        self,
        *,
        led_pin: Pin | None = None,
        rgb_pins: tuple[Pin, Pin, Pin] | None = None,
        buzzer_pin: Pin | None = None,
        active_high: bool = True,
        rgb_pwm: bool = False,
        pin_factory: PinFactory | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._lasting = Indication.IDLE
        self._shown: Indication | None = None
        self._timer: threading.Timer | None = None
        self._closed = False
        self._led: Light | None = None
        self._rgb: ColorLight | None = None
        self._buzzer: Beeper | None = None
        try:
            if led_pin is not None:
                self._led = led(led_pin, active_high=active_high, pin_factory=pin_factory)
            if rgb_pins is not None:
                self._rgb = rgb_led(*rgb_pins, active_high=active_high, pwm=rgb_pwm,
                                    pin_factory=pin_factory)
            if buzzer_pin is not None:
                self._buzzer = buzzer(buzzer_pin, active_high=active_high,
                                      pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    @property
    def shown(self) -> Indication | None:
        """What is showing now (a short signal while it plays), None before the first show."""
        return self._shown

    def show(self, kind: Indication | str) -> None:
        """Show ``kind`` at once (see :class:`hal.roles.Indication`)."""
        indication = Indication(kind)
        with self._lock:
            if self._closed:
                return
            self._cancel_timer()
            if not indication.transient:
                self._lasting = indication
            self._play(indication)
            if indication.transient:
                self._timer = threading.Timer(_duration(indication), self._restore)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """Switch everything off and release the pins. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_timer()
        for device in (self._led, self._rgb, self._buzzer):
            if device is not None:
                try:
                    device.off()  # gpiozero's close() releases the pin as it is
                    device.close()
                except Exception:
                    logger.exception("indicator: closing %r failed", device)

    def _restore(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._timer = None
            self._play(self._lasting)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _play(self, indication: Indication) -> None:
        pattern = PATTERNS[indication]
        try:
            if self._rgb is not None:
                _play_rgb(self._rgb, pattern.color, pattern.rgb)
            if self._led is not None:
                _play_led(self._led, pattern.led)
            if self._buzzer is not None:
                _play_beep(self._buzzer, pattern.beep)
        except Exception:
            logger.exception("indicator: could not show %s", indication)
        self._shown = indication


def _duration(indication: Indication) -> float:
    """How long a short signal plays, with a margin so its last flash is never cut off."""
    pattern = PATTERNS[indication]
    blinks = [b for b in (pattern.rgb, pattern.led, pattern.beep) if b is not None]
    return max(b.duration for b in blinks) + SIGNAL_MARGIN_S


def _play_rgb(rgb: ColorLight, color: Color, blink: Blink) -> None:
    if blink.on_s is None:
        rgb.color = color
    else:
        rgb.blink(on_time=blink.on_s, off_time=blink.off_s, on_color=color, off_color=OFF,
                  n=blink.n, background=True)


def _play_led(light: Light, blink: Blink | None) -> None:
    if blink is None:
        light.off()
    elif blink.on_s is None:
        light.on()
    else:
        light.blink(on_time=blink.on_s, off_time=blink.off_s, n=blink.n, background=True)


def _play_beep(beeper: Beeper, blink: Blink | None) -> None:
    if blink is None or blink.on_s is None:
        beeper.off()
    else:
        beeper.beep(on_time=blink.on_s, off_time=blink.off_s, n=blink.n, background=True)
