"""GpioIndicator on gpiozero mock pins: colours, blinking, short signals, failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hal.indicator_gpio import PATTERNS, GpioIndicator
from hal.roles import Indication, Indicator

LED_PIN, RED, GREEN, BLUE, BUZZER = 4, 12, 13, 19, 26


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
def indicator(factory: MockFactory) -> Iterator[GpioIndicator]:
    indicator = GpioIndicator(led_pin=LED_PIN, rgb_pins=(RED, GREEN, BLUE), buzzer_pin=BUZZER,
                              pin_factory=factory)
    yield indicator
    indicator.close()


def levels(factory: MockFactory, *pins: int) -> tuple[bool, ...]:
    return tuple(bool(factory.pin(p).state) for p in pins)


def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def toggled(factory: MockFactory, pin: int, times: int) -> Callable[[], bool]:
    return lambda: sum(1 for s in factory.pin(pin).states if s.state) >= times


def test_satisfies_the_role(indicator: GpioIndicator) -> None:
    assert isinstance(indicator, Indicator)


def test_everything_starts_off(factory: MockFactory, indicator: GpioIndicator) -> None:
    assert levels(factory, LED_PIN, RED, GREEN, BLUE, BUZZER) == (False,) * 5
    assert indicator.shown is None


def test_every_indication_has_a_pattern() -> None:
    assert set(PATTERNS) == set(Indication)


@pytest.mark.parametrize(
    ("kind", "rgb"),
    [(Indication.IDLE, (False, True, False)), (Indication.CHARGING, (False, False, True)),
     (Indication.FAULT, (True, False, False))],
)
def test_lasting_colours(
    factory: MockFactory, indicator: GpioIndicator, kind: Indication, rgb: tuple[bool, ...]
) -> None:
    indicator.show(kind)
    assert levels(factory, RED, GREEN, BLUE) == rgb
    assert indicator.shown is kind


def test_idle_led_is_steady_and_charging_led_blinks(
    factory: MockFactory, indicator: GpioIndicator
) -> None:
    indicator.show(Indication.IDLE)
    assert levels(factory, LED_PIN) == (True,)
    indicator.show(Indication.CHARGING)
    factory.pin(LED_PIN).clear_states()
    eventually(lambda: any(not s.state for s in factory.pin(LED_PIN).states))  # 1 s on, 1 s off


def test_accepted_blinks_green_beeps_and_returns_to_charging(
    factory: MockFactory, indicator: GpioIndicator
) -> None:
    indicator.show(Indication.CHARGING)
    for pin in (GREEN, BUZZER):
        factory.pin(pin).clear_states()
    indicator.show("accepted")  # plain strings work too
    assert indicator.shown is Indication.ACCEPTED
    eventually(toggled(factory, GREEN, 2))
    eventually(toggled(factory, BUZZER, 1))
    eventually(lambda: indicator.shown is Indication.CHARGING)
    assert levels(factory, RED, GREEN, BLUE) == (False, False, True)


def test_rejected_blinks_red_three_times(factory: MockFactory, indicator: GpioIndicator) -> None:
    indicator.show(Indication.IDLE)
    factory.pin(RED).clear_states()
    indicator.show(Indication.REJECTED)
    eventually(lambda: indicator.shown is Indication.IDLE)
    assert sum(1 for s in factory.pin(RED).states if s.state) == 3
    assert levels(factory, RED, GREEN) == (False, True)


def test_a_lasting_indication_during_a_short_signal_wins(
    factory: MockFactory, indicator: GpioIndicator
) -> None:
    indicator.show(Indication.IDLE)
    indicator.show(Indication.ACCEPTED)
    indicator.show(Indication.FAULT)
    time.sleep(0.8)  # longer than the accepted signal: it must not restore IDLE over FAULT
    assert indicator.shown is Indication.FAULT
    assert levels(factory, RED, GREEN, BLUE) == (True, False, False)


def test_offline_blinks_yellow(factory: MockFactory, indicator: GpioIndicator) -> None:
    indicator.show(Indication.OFFLINE)
    eventually(lambda: levels(factory, RED, GREEN) == (True, True))


def test_only_a_buzzer(factory: MockFactory) -> None:
    indicator = GpioIndicator(buzzer_pin=BUZZER, pin_factory=factory)
    indicator.show(Indication.REJECTED)
    eventually(toggled(factory, BUZZER, 3))
    indicator.close()


def test_unknown_indication_is_a_value_error(indicator: GpioIndicator) -> None:
    with pytest.raises(ValueError):
        indicator.show("disco")


def test_close_switches_off_and_is_idempotent(
    factory: MockFactory, indicator: GpioIndicator
) -> None:
    indicator.show(Indication.FAULT)
    indicator.close()
    indicator.close()
    indicator.show(Indication.IDLE)  # after close: ignored, never raises
    assert levels(factory, RED, GREEN, BLUE) == (False, False, False)
    GpioIndicator(rgb_pins=(RED, GREEN, BLUE), pin_factory=factory).close()  # pins released


def test_a_failing_device_is_logged_not_raised(
    factory: MockFactory, indicator: GpioIndicator, caplog: pytest.LogCaptureFixture
) -> None:
    factory.pin(LED_PIN).function = "input"  # sabotage: an output that cannot be driven
    indicator.show(Indication.IDLE)
    assert "could not show" in caplog.text
