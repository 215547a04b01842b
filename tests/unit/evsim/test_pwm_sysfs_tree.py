"""The sysfs PWM tree: the files a charger writes, read back as an output and an offer."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsim.pwm_sysfs_tree import PwmOutput, PwmSysfsTree
from hal.pwm_sysfs import SysfsPwm


def test_the_agents_driver_writes_what_the_tree_reads(tmp_path: Path) -> None:
    tree = PwmSysfsTree(tmp_path, [(0, 1)])
    assert tree.read(0, 1) == PwmOutput(0, 0, enabled=False)
    pwm = SysfsPwm(0, 1, root=tmp_path)
    pwm.open(pwm.period_ns)
    assert tree.read(0, 1) == PwmOutput(1_000_000, 1_000_000, enabled=True)
    pwm.set_duty_ns(266_666)  # 16 A
    output = tree.read(0, 1)
    assert output.high_fraction == pytest.approx(0.266666)
    assert output.offered_current == pytest.approx(16, abs=1e-4)
    pwm.close()
    assert tree.read(0, 1).high_ns == 0


def test_a_file_caught_mid_write_keeps_the_value_read_before(tmp_path: Path) -> None:
    tree = PwmSysfsTree(tmp_path, [(0, 0)])
    (tree.channel_dir(0, 0) / "period").write_text("1000000\n")
    (tree.channel_dir(0, 0) / "duty_cycle").write_text("500000\n")
    assert tree.read(0, 0).duty_ns == 500_000
    (tree.channel_dir(0, 0) / "duty_cycle").write_text("")  # truncated, not yet written
    assert tree.read(0, 0).duty_ns == 500_000


def test_a_world_restart_leaves_what_the_charger_wrote(tmp_path: Path) -> None:
    tree = PwmSysfsTree(tmp_path, [(0, 0)])
    (tree.channel_dir(0, 0) / "enable").write_text("1\n")
    PwmSysfsTree(tmp_path, [(0, 0)])
    assert (tree.channel_dir(0, 0) / "enable").read_text() == "1\n"


@pytest.mark.parametrize(
    ("output", "amps"),
    [(PwmOutput(1000, 1000, enabled=True), 0.0),  # 100 %: no charging
     (PwmOutput(1000, 100, enabled=True), 6.0),
     (PwmOutput(1000, 100, enabled=False), 0.0),
     (PwmOutput(1000, 900, enabled=True, inverted=True), 6.0)],  # inverted: 10 % high
)
def test_the_offer_follows_iec_61851(output: PwmOutput, amps: float) -> None:
    assert output.offered_current == pytest.approx(amps)
