"""The Pi's hardware PWM as the kernel shows it in sysfs, as plain files in a directory.

The agent's :class:`hal.pwm_sysfs.SysfsPwm` writes these files exactly as it writes
``/sys/class/pwm`` on a Pi (its ``[connector.pilot] pwm_root`` names the directory), and the
simulation reads back what it wrote: the world reads the offer the duty signals, and the
simulated MCP3008 (:mod:`evsim.pins`) samples the pilot wire in step with the output.

:class:`PwmSysfsTree` creates ``<root>/pwmchipN/`` (``npwm``, ``export``, ``unexport``) with
each channel already exported, ``pwmM/`` (``period``, ``duty_cycle``, ``enable``,
``polarity``), as the kernel and udev leave them once a channel is exported. Files that exist
are left alone, so a world that restarts does not undo what a running agent wrote.

:func:`read_output` reads one channel; a file being rewritten at that moment (empty) keeps
the value read before, as the kernel never shows a half-written value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from hal.duty import current_for_duty_percent

CHANNELS_PER_CHIP = 2  # dtoverlay=pwm-2chan


@dataclass(frozen=True)
class PwmOutput:
    """One channel as its files say: period and high time in ns, enabled, inverted."""

    period_ns: int = 0
    duty_ns: int = 0
    enabled: bool = False
    inverted: bool = False

    @property
    def high_ns(self) -> int:
        """How long the output is high (+12 V on the pilot) in each period; a disabled channel
        idles low (-12 V)."""
        if not self.enabled or self.period_ns <= 0:
            return 0
        duty = min(max(self.duty_ns, 0), self.period_ns)
        return self.period_ns - duty if self.inverted else duty

    @property
    def high_fraction(self) -> float:
        """The share of each period the output is high, 0..1."""
        return self.high_ns / self.period_ns if self.high_ns else 0.0

    @property
    def offered_current(self) -> float:
        """The current the duty offers an EV (IEC 61851-1; 0 = no charging)."""
        if not self.high_ns:
            return 0.0
        return float(current_for_duty_percent(Fraction(100 * self.high_ns, self.period_ns)))


def channel_dir(root: Path, chip: int, channel: int) -> Path:
    return root / f"pwmchip{chip}" / f"pwm{channel}"


def read_output(directory: Path, before: PwmOutput | None = None) -> PwmOutput:
    """The channel in ``directory`` now; values that cannot be read stay as in ``before``."""
    old = before or PwmOutput()
    period = _read_int(directory / "period", old.period_ns)
    duty = _read_int(directory / "duty_cycle", old.duty_ns)
    enabled = _read_int(directory / "enable", int(old.enabled))
    polarity = _read_text(directory / "polarity")
    inverted = old.inverted if polarity is None else polarity == "inversed"
    return PwmOutput(period, duty, enabled == 1, inverted)


class PwmSysfsTree:
    """The PWM chips under ``root`` with the ``(chip, channel)`` pairs exported."""

    def __init__(self, root: Path, channels: Iterable[tuple[int, int]]) -> None:
        self.root = root
        self._outputs: dict[tuple[int, int], PwmOutput] = {}
        for chip, channel in channels:
            self._create(chip, channel)
            self._outputs[chip, channel] = PwmOutput()

    def channel_dir(self, chip: int, channel: int) -> Path:
        return channel_dir(self.root, chip, channel)

    def read(self, chip: int, channel: int) -> PwmOutput:
        """What the charger last wrote to the channel."""
        output = read_output(self.channel_dir(chip, channel), self._outputs[chip, channel])
        self._outputs[chip, channel] = output
        return output

    def _create(self, chip: int, channel: int) -> None:
        chip_dir = self.root / f"pwmchip{chip}"
        chip_dir.mkdir(parents=True, exist_ok=True)
        _create_file(chip_dir / "npwm", CHANNELS_PER_CHIP)
        for name in ("export", "unexport"):
            _create_file(chip_dir / name, "")
        directory = self.channel_dir(chip, channel)
        directory.mkdir(exist_ok=True)
        for name, value in (("period", 0), ("duty_cycle", 0), ("enable", 0),
                            ("polarity", "normal")):
            _create_file(directory / name, value)


def _create_file(path: Path, value: int | str) -> None:
    with contextlib.suppress(FileExistsError), path.open("x", encoding="ascii") as file:
        file.write(f"{value}\n")


def _read_text(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _read_int(path: Path, default: int) -> int:
    text = _read_text(path)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        return default
