"""Kernel hardware PWM through sysfs: ``/sys/class/pwm/pwmchipN/pwmM`` (hardware.md §4.3).

The Pi's PWM block times period and duty in nanoseconds, unlike gpiozero's default PWM (software
timed, 1 % steps), so it can signal the IEC 61851-1 duty exactly. Enable it with
``dtoverlay=pwm-2chan`` (PWM0 = GPIO18, PWM1 = GPIO19); on a Pi 5 with kernel >= 6.12 it is
chip 0 for every model. Raspberry Pi OS gives group ``gpio`` write access through udev, a
moment after the channel is exported, so writes are retried for ``export_timeout``.

Kernel rules this module follows: the duty may never exceed the period, so the duty is set to
0 before the period changes; the polarity can only change while the channel is disabled.

``root`` is injectable, so tests run against a fake tree in a temporary directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hal.errors import ConfigurationError, PilotError

logger = logging.getLogger(__name__)

SYSFS_PWM = Path("/sys/class/pwm")
_RETRY_S = 0.02


class SysfsPwm:
    """One PWM channel. Not thread-safe: one owner (the pilot driver) serializes its calls."""

    def __init__(
        self,
        chip: int = 0,
        channel: int = 0,
        *,
        period_ns: int = 1_000_000,
        inverted: bool = False,
        root: Path = SYSFS_PWM,
        export_timeout: float = 1.0,
    ) -> None:
        if period_ns <= 0 or chip < 0 or channel < 0:
            raise ConfigurationError("need period_ns > 0 and chip, channel >= 0")
        self._chip_dir = root / f"pwmchip{chip}"
        self._channel = channel
        self._dir = self._chip_dir / f"pwm{channel}"
        self._period_ns = period_ns
        self._inverted = inverted
        self._export_timeout = export_timeout
        self._duty_ns: int | None = None
        self._open = False

    @property
    def period_ns(self) -> int:
        return self._period_ns

    @property
    def duty_ns(self) -> int | None:
        """The high time last written, or None before :meth:`open`."""
        return self._duty_ns

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self, duty_ns: int = 0) -> None:
        """Export the channel if needed, set period and ``duty_ns``, and enable the output."""
        if not self._chip_dir.is_dir():
            raise ConfigurationError(
                f"no PWM chip at {self._chip_dir}: enable it (e.g. dtoverlay=pwm-2chan)"
            )
        if not self._dir.is_dir():
            self._write_path(self._chip_dir / "export", self._channel)
        self._wait_writable()
        self._write("enable", 0)
        if (self._dir / "polarity").exists():
            self._write("polarity", "inversed" if self._inverted else "normal")
        self._write("duty_cycle", 0)
        self._write("period", self._period_ns)
        self._open = True
        self.set_duty_ns(duty_ns)
        self._write("enable", 1)
        logger.info("hardware PWM %s: %s ns period", self._dir, self._period_ns)

    def set_duty_ns(self, duty_ns: int) -> None:
        """Set the high time, 0..period ns; raises PilotError if the kernel refuses it."""
        if not self._open:
            raise PilotError(f"PWM {self._dir} is not open")
        if not 0 <= duty_ns <= self._period_ns:
            raise ConfigurationError(f"duty must be 0..{self._period_ns} ns, not {duty_ns}")
        if duty_ns != self._duty_ns:
            self._write("duty_cycle", duty_ns)
            self._duty_ns = duty_ns

    def close(self) -> None:
        """Drive duty 0 (output low), then disable; the channel stays exported. Idempotent.

        Best effort: a failing write is logged, never raised, so shutdown always completes.
        """
        if not self._open:
            return
        self._open = False
        for name in ("duty_cycle", "enable"):
            try:
                self._write(name, 0)
            except PilotError as exc:
                logger.error("closing PWM: %s", exc)
        self._duty_ns = 0

    def _wait_writable(self) -> None:
        deadline = time.monotonic() + self._export_timeout
        while True:
            try:
                self._write("enable", 0)
                return
            except PilotError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(_RETRY_S)

    def _write(self, name: str, value: int | str) -> None:
        self._write_path(self._dir / name, value)

    def _write_path(self, path: Path, value: int | str) -> None:
        try:
            with path.open("w", encoding="ascii") as file:
                file.write(f"{value}\n")
        except OSError as exc:
            raise PilotError(f"writing {value} to {path}: {exc}") from exc
