"""The pin bus line protocol."""

from __future__ import annotations

import pytest

from evsim.pilot_wire import AdcInput
from evsim.pin_bus import (
    PinBusError,
    format_adc,
    format_in,
    format_out,
    format_site,
    parse_adc,
    parse_line,
    parse_site,
)


@pytest.mark.parametrize(
    ("level", "line"),
    [(1.0, b"OUT 17 1\n"), (0.0, b"OUT 17 0\n"), (True, b"OUT 17 1\n"),
     (0.26, b"OUT 17 0.2600\n"), (None, b"OUT 17 Z\n")],
)
def test_out_lines_round_trip(level: float | None, line: bytes) -> None:
    assert format_out(17, level) == line
    verb, pin, parsed = parse_line(line)
    assert (verb, pin) == ("OUT", 17)
    assert parsed == (None if level is None else pytest.approx(float(level)))


def test_in_lines() -> None:
    assert format_in(27, True) == b"IN 27 1\n"
    assert parse_line(b"IN 27 0\r\n") == ("IN", 27, 0.0)


@pytest.mark.parametrize(
    "line", [b"", b"HELLO\n", b"OUT x 1\n", b"OUT 17\n", b"OUT 17 2\n", b"IN 27 Z\n", b"OUT 1 on\n"]
)
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(PinBusError):
        parse_line(line)


def test_site_lines_round_trip_and_other_lines_name_no_site() -> None:
    assert format_site("SIM-0001") == b"SITE SIM-0001\n"
    assert parse_site(format_site("SIM-0001")) == "SIM-0001"
    assert parse_site(format_in(17, True)) is None


def test_adc_lines_round_trip_with_a_pwm_path_that_has_spaces() -> None:
    wire = AdcInput(0.875, 0.0, "/tmp/my site/pwm/pwmchip0/pwm1")
    line = format_adc((0, 0, 1), wire)
    assert line == b"ADC 0 0 1 0.8750 0.0000 /tmp/my site/pwm/pwmchip0/pwm1\n"
    assert parse_adc(line) == ((0, 0, 1), wire)


@pytest.mark.parametrize(
    "line", [b"ADC 0 0 1 0.5 0.1\n", b"ADC 0 0 x 0.5 0.1 /p\n", b"ADC 0 0 1 1.5 0.1 /p\n",
             b"ADC 0 0 1 high 0.1 /p\n"]
)
def test_malformed_adc_lines_are_refused(line: bytes) -> None:
    with pytest.raises(PinBusError):
        parse_adc(line)
