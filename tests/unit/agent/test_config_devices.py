"""The optional device tables: lock, RCD, indicator, the PWM pilot, PN532, plausibility."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config

BASE = """
[charger]
id = "CP-1"
[csms]
url = "ws://127.0.0.1:9000/ocpp"
[[bus]]
name = "rs485"
port = "/dev/ttyUSB0"
[[connector]]
id = 1
[connector.contactor]
pin = 17
[connector.pilot]
bus = "rs485"
[connector.meter]
driver = "sdm630"
bus = "rs485"
"""


def problems(extra: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(base + extra)
    return list(caught.value.problems)


def test_left_out_tables_mean_no_such_device() -> None:
    config = parse_config(BASE)
    (c,) = config.connectors
    assert c.lock is None and c.rcd is None
    assert config.rcd is None and config.indicator is None
    assert c.meter.plausibility is True
    assert config.reader.baudrate is None  # the module's own default


def test_a_lock_an_rcd_and_an_indicator() -> None:
    config = parse_config(BASE + """
[connector.lock]
pin = 20
unlock_pin = 21
feedback_pin = 16
[connector.rcd]
pin = 26
[indicator]
red_pin = 5
green_pin = 6
blue_pin = 13
""")
    (c,) = config.connectors
    assert c.lock is not None and (c.lock.pin, c.lock.unlock_pin, c.lock.feedback_pin) == (
        20, 21, 16)
    assert c.rcd is not None and c.rcd.pin == 26 and c.rcd.active_high
    assert config.indicator is not None and config.indicator.blue_pin == 13


def test_a_lock_needs_its_pins() -> None:
    assert problems("[connector.lock]\nfeedback_pin = 16\n") == [
        "connector[1].lock.pin: missing; this key is required (GPIO that drives the lock "
        "motor towards locked (leave the table out for a fixed cable: UnlockConnector is then "
        "NotSupported))",
        "connector[1].lock.unlock_pin: missing; this key is required (GPIO that drives the "
        "lock motor towards open)",
    ]


def test_every_gpio_has_one_job() -> None:
    found = problems("[connector.rcd]\npin = 17\n[indicator]\nled_pin = 17\n")
    assert found == [
        "connector[1].rcd.pin: GPIO17 is already used by connector[1].contactor.pin; "
        "each GPIO pin may have one job only",
        "indicator.led_pin: GPIO17 is already used by connector[1].contactor.pin; "
        "each GPIO pin may have one job only",
    ]


def test_a_pwm_pilot_needs_no_bus_and_checks_its_thresholds() -> None:
    pwm = BASE.replace('[connector.pilot]\nbus = "rs485"', '[connector.pilot]\ndriver = "pwm"')
    assert parse_config(pwm).connectors[0].pilot.bus is None
    found = problems("", pwm.replace('driver = "pwm"', 'driver = "pwm"\nthreshold_b_c = 11.0'))
    assert found == ["connector[1].pilot.threshold_b_c: 11.0 must be below threshold_a_b "
                     "(10.5); the thresholds fall from A to F"]
    found = problems("", pwm.replace('driver = "pwm"', 'driver = "pwm"\nhysteresis = 2.0'))
    assert found[0].startswith("connector[1].pilot.hysteresis: 2.0 is too large")


def test_a_pwm_pilots_sysfs_root_is_an_absolute_path() -> None:
    pwm = BASE.replace('[connector.pilot]\nbus = "rs485"', '[connector.pilot]\ndriver = "pwm"')
    assert parse_config(pwm).connectors[0].pilot.pwm_root == Path("/sys/class/pwm")
    found = problems("", pwm.replace('driver = "pwm"', 'driver = "pwm"\npwm_root = "sys/pwm"'))
    assert found == ["connector[1].pilot.pwm_root: 'sys/pwm' is not an absolute path"]


def test_an_evse_board_pilot_needs_a_bus() -> None:
    no_bus = BASE.replace('[connector.pilot]\nbus = "rs485"', "[connector.pilot]\ndevice_id = 1")
    assert problems("", no_bus) == [
        "connector[1].pilot.bus: missing; required when driver = 'evse-board'"]


def test_pn532_is_a_reader_driver() -> None:
    config = parse_config(BASE + '[reader]\ndriver = "pn532"\nport = "/dev/serial0"\n'
                          'byte_order = "reversed"\n')
    assert (config.reader.driver, config.reader.byte_order) == ("pn532", "reversed")
    assert problems('[reader]\ndriver = "pn532"\nport = "/dev/serial0"\nbyte_order = "le"\n') == [
        "reader.byte_order: 'le' is not allowed; choose one of: as-read, reversed"]


def test_a_phase_switch_table_with_its_defaults() -> None:
    (c,) = parse_config(BASE + "[connector.phase_switch]\npin = 4\n").connectors
    k = c.phase_switch
    assert k is not None and (k.pin, k.active_high, k.feedback_pin) == (4, True, None)
    assert (k.default_phases, k.settle, k.min_interval) == (3, 5.0, 300.0)
    assert parse_config(BASE).connectors[0].phase_switch is None


def test_a_phase_switch_is_validated() -> None:
    assert problems("[connector.phase_switch]\npin = 17\nfeedback_pin = 27\n"
                    "default_phases = 2\nmin_interval = 1\n") == [
        "connector[1].phase_switch.default_phases: 2 is not allowed; choose one of: 1, 3",
        "connector[1].phase_switch.min_interval: 1 is out of range; allowed 10..86400 (seconds)",
        "connector[1].phase_switch.pin: GPIO17 is already used by connector[1].contactor.pin; "
        "each GPIO pin may have one job only",
    ]
    one_phase = BASE.replace("id = 1\n", "id = 1\nphases = 1\n")
    assert problems("[connector.phase_switch]\npin = 4\n", one_phase) == [
        "connector[1].phase_switch: a phase switch needs a connector wired for 3 phases "
        "(phases = 3)"]
