"""An MCP3008 ADC on the simulated Pi's hardware SPI, for the evsim pin factory (charger side).

gpiozero's ``MCP3008(port=P, device=D)`` asks its pin factory for hardware SPI P.D; the evsim
factory answers with :class:`WorldSpi`, which behaves like spidev with an MCP3008 behind it:
every :meth:`WorldSpi.transfer` is one conversion of the channel the command selects. The
input levels come from the world over the pin bus (:class:`evsim.pilot_wire.AdcInput`): a
conversion samples the pilot wire at a random instant of the PWM period, high with the
probability the sysfs PWM channel's duty gives, as a real MCP3008 does when userspace cannot
sync to the 1 kHz edges. An input the world describes nothing on reads 0.

The PWM files are read at most every :data:`PWM_READ_S` per input: a burst of conversions
costs a few file reads, not one per conversion.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero.mixins import SharedMixin
from gpiozero.pins import SPI
from gpiozero.pins.pi import spi_port_device

from evsim.pilot_wire import AdcInput
from evsim.pwm_sysfs_tree import PwmOutput, read_output

RESOLUTION = 1023  # 10 bits
PWM_READ_S = 0.001


def mcp3008_answer(tx: list[int], level: Callable[[int], float]) -> list[int]:
    """The MISO words for the MOSI words ``tx`` (8 bits each, MSB first): after the start
    bit, the single-ended bit and three channel bits, a sample bit, a null bit and the 10-bit
    result of ``level(channel)`` (0..1 of full scale). Differential reads return 0."""
    bits = "".join(f"{word & 0xFF:08b}" for word in tx)
    start = bits.find("1")
    out = ["0"] * len(bits)
    if start >= 0 and start + 4 < len(bits):
        single, channel = bits[start + 1] == "1", int(bits[start + 2:start + 5], 2)
        value = round(min(max(level(channel), 0.0), 1.0) * RESOLUTION) if single else 0
        result = f"{value:010b}"
        first = start + 6  # after the channel bits: the sample bit, then the null bit
        for i, bit in enumerate(result, start=first + 1):
            if i < len(out):
                out[i] = bit
    joined = "".join(out)
    return [int(joined[i:i + 8], 2) for i in range(0, len(joined), 8)]


class _Sampler:
    """Samples the pilot wire of one input: high or low as the PWM output is at that instant."""

    def __init__(self) -> None:
        self._random = random.Random()
        self._outputs: dict[str, tuple[float, PwmOutput]] = {}
        self._lock = threading.Lock()

    def level(self, wire: AdcInput | None) -> float:
        if wire is None:
            return 0.0
        high = self._random.random() < self._output(wire.pwm).high_fraction
        return wire.high if high else wire.low

    def _output(self, pwm: str) -> PwmOutput:
        now = time.monotonic()
        with self._lock:
            read_at, output = self._outputs.get(pwm, (-1.0, None))
            if output is None or now - read_at >= PWM_READ_S:
                output = read_output(Path(pwm), output)
                self._outputs[pwm] = (now, output)
            return output


class WorldSpi(SPI):  # type: ignore[misc]  # gpiozero is untyped
    """Hardware SPI ``port``.``device`` of the simulated Pi with an MCP3008 on it.

    Built by gpiozero as ``cls(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory)``; the
    factory must have ``adc_input(key)`` (the world's description of an input, or None).
    """

    def __init__(self, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any,
                 pin_factory: Any) -> None:
        self._port, self._device = spi_port_device(clock_pin, mosi_pin, miso_pin, select_pin)
        self._closed = False
        self._mode = 0
        self._sampler = _Sampler()
        super().__init__(pin_factory=pin_factory)
        pins = {pin for pin in (clock_pin, mosi_pin, miso_pin, select_pin) if pin is not None}
        self.pin_factory.reserve_pins(self, *pins)

    def _conflicts_with(self, other: Any) -> bool:
        if isinstance(other, WorldSpi):
            return (self._port, self._device) == (other._port, other._device)
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pin_factory.release_all(self)
        super().close()

    def __repr__(self) -> str:
        return f"WorldSpi(port={self._port}, device={self._device})"

    def transfer(self, data: list[int]) -> list[int]:
        self._check_open()
        return mcp3008_answer(list(data), self._level)

    def _level(self, channel: int) -> float:
        wire = self.pin_factory.adc_input((self._port, self._device, channel))
        return self._sampler.level(wire)

    def _get_clock_mode(self) -> int:
        return self._mode

    def _set_clock_mode(self, value: int) -> None:
        self._mode = value


class WorldSpiShared(SharedMixin, WorldSpi):  # type: ignore[misc]
    """:class:`WorldSpi` shared by every ADC channel on one chip select of one factory
    (gpiozero's MCP3008 asks for a shared interface)."""

    @classmethod
    def _shared_key(cls, clock_pin: Any, mosi_pin: Any, miso_pin: Any, select_pin: Any,
                    pin_factory: Any) -> tuple[Any, Any, Any]:
        return (pin_factory, clock_pin, select_pin)  # gpiozero keys these per class only
