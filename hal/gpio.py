"""The one module that touches gpiozero: pin factories by name, typed pins and small devices.

gpiozero is untyped; everything the HAL needs from it is re-exported here behind small
protocols so that drivers stay ``mypy --strict`` clean and can be read without gpiozero's docs.

Pin factories are chosen by name through gpiozero's ``gpiozero_pin_factories`` entry points
(``lgpio``, ``rpigpio``, ``pigpio``, ``native``, ``mock``, and any a package registers, such as
the simulator's ``evsim``). Drivers receive the factory; nothing here sets gpiozero's global
``Device.pin_factory``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol

from gpiozero import LED, MCP3008, RGBLED, Buzzer, DigitalInputDevice, OutputDevice

from hal.errors import ConfigurationError, WrongSite

PinFactory = Any  # a gpiozero.Factory instance; gpiozero ships no type information
Pin = int | str  # BCM number or a gpiozero pin name such as "GPIO17" / "BOARD11"
Color = tuple[float, float, float]  # red, green, blue, each 0..1
ENTRY_POINT_GROUP = "gpiozero_pin_factories"


class DigitalOutput(Protocol):
    """A gpiozero OutputDevice as the HAL uses it."""

    @property
    def value(self) -> int: ...

    def on(self) -> None: ...

    def off(self) -> None: ...

    def close(self) -> None: ...


class DigitalInput(Protocol):
    """A gpiozero DigitalInputDevice as the HAL uses it."""

    @property
    def is_active(self) -> bool: ...

    when_activated: Callable[[], None] | None
    when_deactivated: Callable[[], None] | None

    def close(self) -> None: ...


def watch_edges(device: DigitalInput, callback: Callable[[bool], None] | None,
                announce: Callable[[bool], None]) -> None:
    """Call ``announce(active)`` then ``callback(active)`` at every edge of ``device``, on
    gpiozero's thread; ``callback`` None stops watching."""
    def edge(active: bool) -> Callable[[], None]:
        def changed() -> None:
            announce(active)
            if callback is not None:
                callback(active)
        return changed

    device.when_activated = None if callback is None else edge(True)
    device.when_deactivated = None if callback is None else edge(False)


class AnalogInput(Protocol):
    """A gpiozero MCP3xxx ADC channel as the HAL uses it."""

    @property
    def value(self) -> float: ...  # 0..1 of the reference voltage

    def close(self) -> None: ...


class Light(Protocol):
    """A gpiozero LED."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def blink(
        self, on_time: float = 1, off_time: float = 1, n: int | None = None,
        background: bool = True,
    ) -> None: ...

    def close(self) -> None: ...


class ColorLight(Protocol):
    """A gpiozero RGBLED."""

    color: Color

    def off(self) -> None: ...

    def blink(
        self, on_time: float = 1, off_time: float = 1, fade_in_time: float = 0,
        fade_out_time: float = 0, on_color: Color = (1, 1, 1), off_color: Color = (0, 0, 0),
        n: int | None = None, background: bool = True,
    ) -> None: ...

    def close(self) -> None: ...


class Beeper(Protocol):
    """A gpiozero Buzzer (an active buzzer: on = sound)."""

    def off(self) -> None: ...

    def beep(
        self, on_time: float = 1, off_time: float = 1, n: int | None = None,
        background: bool = True,
    ) -> None: ...

    def close(self) -> None: ...


def make_pin_factory(name: str | None) -> PinFactory | None:
    """A new pin factory registered under ``name`` (exact, then lower-case), like gpiozero.

    ``None`` returns None, which drivers pass on so that gpiozero uses its default factory
    (``GPIOZERO_PIN_FACTORY`` or lgpio → rpigpio → pigpio → native). An unknown name raises
    :class:`ConfigurationError` listing the known ones.
    """
    if name is None:
        return None
    group = entry_points(group=ENTRY_POINT_GROUP)
    for candidate in (name, name.lower()):
        for ep in group:
            if ep.name == candidate:
                return ep.load()()
    known = ", ".join(sorted({ep.name for ep in group}))
    raise ConfigurationError(f"unknown gpiozero pin factory {name!r} (known: {known})")


def claim_site(factory: PinFactory | None, site: str, timeout: float = 2.0) -> None:
    """Bind a simulated pin factory to ``site`` (the charger id); others are left alone.

    The simulator's factory (``evsim``) has ``claim_site``/``world_site``: its world announces
    the charger id it is wired to. Raises :class:`WrongSite` when the world reached within
    ``timeout`` is another charger's; the factory then drives none of that world's pins.
    """
    claim, ask = getattr(factory, "claim_site", None), getattr(factory, "world_site", None)
    if claim is None or ask is None:
        return
    claim(site)
    announced = ask(timeout)
    if announced is not None and announced != site:
        raise WrongSite(
            f"the simulated world on the pin bus is site {announced!r}, not this charger's "
            f"{site!r} (charger.id): another evsim world holds its ports? Stop it, or start "
            f"this charger's world with site = {site!r}")


def digital_output(
    pin: Pin, *, active_high: bool = True, pin_factory: PinFactory | None = None
) -> DigitalOutput:
    """An output that starts inactive (off) whatever the wiring polarity."""
    device: DigitalOutput = OutputDevice(
        pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
    )
    return device


def digital_input(
    pin: Pin,
    *,
    active_high: bool = True,
    bounce_time: float | None = None,
    pin_factory: PinFactory | None = None,
) -> DigitalInput:
    """An input with an external pull resistor (no internal pull), active as ``active_high``."""
    device: DigitalInput = DigitalInputDevice(
        pin,
        pull_up=None,
        active_state=active_high,
        bounce_time=bounce_time,
        pin_factory=pin_factory,
    )
    return device


def mcp3008(
    channel: int,
    *,
    port: int = 0,
    device: int = 0,
    max_voltage: float = 3.3,
    pin_factory: PinFactory | None = None,
) -> AnalogInput:
    """Single-ended channel ``channel`` of an MCP3008 on SPI ``port``.``device``.

    gpiozero uses hardware SPI (/dev/spidevP.D, needs the ``spidev`` package) when it can and
    bit-bangs otherwise (warning ``SPISoftwareFallback``), which is much slower.
    """
    adc: AnalogInput = MCP3008(
        channel=channel, differential=False, max_voltage=max_voltage, port=port, device=device,
        pin_factory=pin_factory,
    )
    return adc


def led(pin: Pin, *, active_high: bool = True, pin_factory: PinFactory | None = None) -> Light:
    """One LED, off to start with."""
    light: Light = LED(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
    return light


def rgb_led(
    red: Pin,
    green: Pin,
    blue: Pin,
    *,
    active_high: bool = True,
    pwm: bool = False,
    pin_factory: PinFactory | None = None,
) -> ColorLight:
    """An RGB LED, off to start with; ``pwm=False`` switches each colour fully on or off."""
    light: ColorLight = RGBLED(
        red, green, blue, active_high=active_high, initial_value=(0, 0, 0), pwm=pwm,
        pin_factory=pin_factory,
    )
    return light


def buzzer(pin: Pin, *, active_high: bool = True, pin_factory: PinFactory | None = None) -> Beeper:
    """An active buzzer, silent to start with."""
    beeper: Beeper = Buzzer(
        pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
    )
    return beeper
