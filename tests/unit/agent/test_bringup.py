"""The installer's messages of ``evse-agent bringup`` for failures the simulator cannot cause."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agent import bringup


def test_permission_denied_on_the_gpio_chip_names_the_gpio_group() -> None:
    error = PermissionError(errno.EACCES, "Permission denied", "/dev/gpiochip0")
    message = bringup.gpio_problem(error)
    assert "permission denied on /dev/gpiochip0" in message
    assert "usermod -aG gpio" in message


def test_gpio_chip_that_may_not_be_opened_stops_the_check_before_any_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chip = tmp_path / "gpiochip0"
    chip.touch()
    monkeypatch.setattr(bringup, "GPIO_CHIP", chip)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a user outside gpio
    with pytest.raises(bringup.CheckFailed, match="gpio group"):
        bringup.check_gpio_access("lgpio")
    bringup.check_gpio_access("evsim")  # simulated pins need no device


def test_lgpio_without_a_chip_and_a_busy_pin_get_their_own_advice() -> None:
    assert "no usable GPIO chip" in bringup.gpio_problem(RuntimeError("can not open gpiochip"))
    assert "stop it first" in bringup.gpio_problem(RuntimeError("GPIO busy"))


def test_serial_port_permission_names_the_dialout_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(bringup.CheckFailed, match="dialout group"):
        bringup.check_serial_port("/dev/null", "bus 'rs485'")
    error = OSError(errno.EACCES, "Permission denied: '/dev/ttyUSB0'")
    assert "dialout" in bringup.serial_problem(error, "/dev/ttyUSB0", "pn532")


def test_missing_serial_port_and_urls() -> None:
    with pytest.raises(bringup.CheckFailed, match="/dev/ttyNOPE does not exist"):
        bringup.check_serial_port("/dev/ttyNOPE", "the rdm6300 reader")
    bringup.check_serial_port("socket://127.0.0.1:1", "bus")  # a URL is not a path


def test_energy_register_going_backwards_fails() -> None:
    bringup.check_energy_order(1000.0, 1000.0)
    with pytest.raises(bringup.CheckFailed, match="went backwards"):
        bringup.check_energy_order(1000.0, 990.0)
