"""PwmPilot on a fake sysfs PWM tree, reading the pilot through an MCP3008 on gpiozero mock pins.

The "hardware" is a fake EV behind the pilot wire: every ADC conversion samples the wire at a
random instant of the PWM period that the fake sysfs files describe, as a real MCP3008 does
when userspace cannot sync to the 1 kHz edges.
"""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockSPIDevice

from hal.errors import ConfigurationError, PilotError
from hal.gpio import mcp3008
from hal.pilot_classifier import PilotClassifier
from hal.pilot_pwm import PilotAdc, PwmPilot
from hal.pwm_sysfs import SysfsPwm
from hal.roles import ControlPilot, PilotState
from tests.contract.recorder import Recorder

VREF = 3.3
HIGH = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0}
LOW_WITHOUT_DIODE = {"A": -12.0, "B": -8.8, "C": -5.6, "D": -2.4}  # -12 V x R / (R + 1 kOhm)


class FakeSysfs:
    """pwmchip0 with one channel; exporting creates pwm0 a little later, like the kernel."""

    def __init__(self, root: Path, exported: bool = True) -> None:
        self.root = root
        self.chip = root / "pwmchip0"
        self.chip.mkdir(parents=True)
        (self.chip / "npwm").write_text("2\n")
        (self.chip / "export").write_text("")
        self.channel = self.chip / "pwm0"
        if exported:
            self._create_channel()

    def _create_channel(self) -> None:
        self.channel.mkdir()
        for name, value in (("period", 0), ("duty_cycle", 0), ("enable", 0),
                            ("polarity", "normal")):
            (self.channel / name).write_text(f"{value}\n")

    def export_later(self) -> threading.Thread:
        def kernel() -> None:
            for _ in range(200):
                if (self.chip / "export").read_text().strip() == "0":
                    self._create_channel()
                    return
                threading.Event().wait(0.005)

        thread = threading.Thread(target=kernel, daemon=True)
        thread.start()
        return thread

    def read(self, name: str) -> int:
        return int((self.channel / name).read_text() or 0)


class FakeEv:
    """The pilot wire: the EVSE's ±12 V PWM through 1 kOhm, loaded by the EV."""

    def __init__(self, sysfs: FakeSysfs) -> None:
        self.sysfs = sysfs
        self.state = "A"
        self.diode = True
        self.shorted = False
        self._random = random.Random(61851)

    def volts(self) -> float:
        if self.shorted:
            return 0.0
        period, duty = self.sysfs.read("period"), self.sysfs.read("duty_cycle")
        if not self.sysfs.read("enable") or duty == 0:
            return -12.0
        if duty >= period or self._random.random() < duty / period:
            return HIGH[self.state]
        return -12.0 if self.diode else LOW_WITHOUT_DIODE[self.state]

    def adc_input(self) -> float:
        """What the front end puts on the ADC pin: -12..+12 V onto 0..3.3 V."""
        return (self.volts() + 12.0) / 24.0 * VREF


class FakeMcp3008(MockSPIDevice):  # type: ignore[misc]  # gpiozero is untyped
    """The slave side of an MCP3008 on the mock SPI pins; channel 0 reads ``source()`` volts."""

    def __init__(self, factory: MockFactory, source: Callable[[], float]) -> None:
        super().__init__(11, 10, 9, 8, pin_factory=factory)  # SPI0 CE0: SCLK, MOSI, MISO, CE0
        self.source = source
        self._phase = "idle"

    def on_start(self) -> None:
        super().on_start()
        self._phase = "idle"

    def on_bit(self) -> None:
        if self._phase == "idle" and self.rx_buf[-1]:  # start bit
            self._phase, self.rx_buf = "mode", []
        elif self._phase == "mode":  # single-ended / differential
            self._phase, self.rx_buf = "channel", []
        elif self._phase == "channel" and len(self.rx_buf) == 3:
            volts = min(max(self.source(), 0.0), VREF)
            self.tx_word(min(1023, int(volts / VREF * 1024)), 12)  # sample bit, null bit, 10 bits
            self._phase = "result"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, tmp_path: Path, factory: MockFactory) -> None:
        self.sysfs = FakeSysfs(tmp_path)
        self.ev = FakeEv(self.sysfs)
        self.adc_chip = FakeMcp3008(factory, self.ev.adc_input)
        self.clock = FakeClock()
        self.states: Recorder[PilotState] = Recorder()
        self.failures: Recorder[BaseException | None] = Recorder()
        self.pwm = SysfsPwm(0, 0, root=tmp_path)
        self.pilot = PwmPilot(
            self.pwm,
            PilotAdc(mcp3008(0, pin_factory=factory)),
            classifier=PilotClassifier(confirm=2, window=3),
            burst_size=50,  # 16.7 % duty: P(no high sample) = 0.83^50 = 1e-4
            interval=0.002,
            on_failure=self.failures,
            clock=self.clock,
        )

    async def start(self) -> None:
        await self.pilot.start(self.states)

    async def sees(self, state: PilotState) -> None:
        await self.states.until(lambda values: values[-1:] == [state])


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockFactory]:
    factory = MockFactory()
    # gpiozero's software SPI bus builds itself without the pin factory it was given and asks
    # for the global default one: give it a mock, restored after the test.
    monkeypatch.setattr(Device, "pin_factory", MockFactory())
    yield factory
    factory.reset()


@pytest.fixture
async def rig(tmp_path: Path, factory: MockFactory) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path, factory)
    yield rig
    await rig.pilot.aclose()
    rig.adc_chip.close()


async def test_satisfies_the_role(rig: Rig) -> None:
    assert isinstance(rig.pilot, ControlPilot)


async def test_starts_at_steady_12v_and_reports_a_on_its_thread(rig: Rig) -> None:
    await rig.start()
    assert (rig.sysfs.read("period"), rig.sysfs.read("duty_cycle")) == (1_000_000, 1_000_000)
    assert rig.sysfs.read("enable") == 1
    await rig.sees(PilotState.A)
    assert threading.main_thread() not in rig.states.threads
    assert rig.pilot.state is PilotState.A


async def test_a_session_b_offer_c_diode_seen(rig: Rig) -> None:
    await rig.start()
    await rig.sees(PilotState.A)
    rig.ev.state = "B"
    await rig.sees(PilotState.B)
    assert not rig.pilot.diode_seen  # no PWM yet: nothing to check
    await rig.pilot.set_offered_current(16)
    assert rig.sysfs.read("duty_cycle") == 266_666  # 26.67 % rounded down
    rig.ev.state = "C"
    await rig.sees(PilotState.C)
    assert rig.pilot.diode_seen
    rig.ev.state = "B"
    await rig.sees(PilotState.B)
    rig.ev.state = "A"
    await rig.sees(PilotState.A)
    assert not rig.pilot.diode_seen


async def test_missing_diode_is_f(rig: Rig) -> None:
    await rig.start()
    rig.ev.state, rig.ev.diode = "C", False
    await rig.sees(PilotState.C)  # PWM off: the diode cannot be checked yet
    await rig.pilot.set_offered_current(10)
    await rig.sees(PilotState.F)
    assert not rig.pilot.diode_seen


async def test_shorted_pilot_is_e(rig: Rig) -> None:
    await rig.start()
    rig.ev.state = "C"
    await rig.pilot.set_offered_current(10)
    await rig.sees(PilotState.C)
    rig.ev.shorted = True
    await rig.sees(PilotState.E)


async def test_offer_changes_wait_five_seconds(rig: Rig) -> None:
    await rig.start()
    await rig.pilot.set_offered_current(16)
    await rig.pilot.set_offered_current(10)
    assert rig.sysfs.read("duty_cycle") == 266_666
    assert rig.pilot.offered_current == 16
    rig.clock.now += 5.0
    await Recorder[int]().until(lambda _: rig.sysfs.read("duty_cycle") == 166_666)
    assert rig.pilot.offered_current == 10
    await rig.pilot.set_offered_current(0)  # stopping never waits
    assert rig.sysfs.read("duty_cycle") == 1_000_000


async def test_an_offer_before_start_is_kept_and_the_pwm_opens_with_it(rig: Rig) -> None:
    await rig.pilot.set_offered_current(0)  # the agent's first offer may come before start()
    await rig.pilot.set_offered_current(16)
    assert rig.sysfs.read("enable") == 0  # nothing written yet
    await rig.start()
    assert rig.sysfs.read("duty_cycle") == 266_666  # 16 A / 0.6 = 26.67 %, rounded down
    assert rig.pilot.offered_current == 16


async def test_negative_offer_is_refused(rig: Rig) -> None:
    await rig.start()
    with pytest.raises(ConfigurationError):
        await rig.pilot.set_offered_current(-1)


async def test_aclose_drives_minus_12v_and_disables(rig: Rig) -> None:
    await rig.start()
    await rig.pilot.set_offered_current(16)
    await rig.pilot.aclose()
    await rig.pilot.aclose()
    assert (rig.sysfs.read("duty_cycle"), rig.sysfs.read("enable")) == (0, 0)


# -- the ADC failing, the PWM through sysfs --------------------------------------------------


class FlakyAdc:
    def __init__(self) -> None:
        self.volts = 12.0
        self.broken = False

    def __call__(self) -> float:
        if self.broken:
            raise OSError("SPI transfer failed")
        return self.volts


async def test_a_lost_adc_is_e_and_comes_back(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    adc = FlakyAdc()
    states: Recorder[PilotState] = Recorder()
    failures: Recorder[BaseException | None] = Recorder()
    pilot = PwmPilot(SysfsPwm(root=tmp_path), adc, burst_size=3, interval=0.001,
                     on_failure=failures)
    try:
        await pilot.start(states)
        await states.until_value(PilotState.A)
        adc.broken = True
        await states.until(lambda v: v[-1:] == [PilotState.E])
        assert isinstance((await failures.until(lambda v: len(v) == 1))[0], PilotError)
        adc.broken = False
        await failures.until(lambda v: v[-1:] == [None])
        await states.until(lambda v: v[-1:] == [PilotState.A])
    finally:
        await pilot.aclose()


class RefusingPwm:
    """A PWM whose writes fail while ``broken``."""

    period_ns = 1_000_000

    def __init__(self) -> None:
        self.broken = False
        self.duty: int | None = None

    def open(self, duty_ns: int = 0) -> None:
        self.duty = duty_ns

    def set_duty_ns(self, duty_ns: int) -> None:
        if self.broken:
            raise PilotError("EINVAL")
        self.duty = duty_ns

    def close(self) -> None:
        self.duty = 0


async def test_a_refused_write_is_retried_by_the_next_request() -> None:
    pwm = RefusingPwm()
    pilot = PwmPilot(pwm, FlakyAdc(), burst_size=1, interval=0.01)
    try:
        await pilot.start(Recorder())
        pwm.broken = True
        with pytest.raises(PilotError):
            await pilot.set_offered_current(16)
        pwm.broken = False
        await pilot.set_offered_current(16)  # not "unchanged": the EV never saw the first
        assert pwm.duty == 266_666
        pwm.duty = 123  # whatever happened to the output, a stop is always written
        await pilot.set_offered_current(0)
        await pilot.set_offered_current(0)
        assert pwm.duty == 1_000_000
    finally:
        await pilot.aclose()


def test_sysfs_exports_and_waits_for_the_channel(tmp_path: Path) -> None:
    sysfs = FakeSysfs(tmp_path, exported=False)
    kernel = sysfs.export_later()
    pwm = SysfsPwm(0, 0, root=tmp_path, period_ns=1_000_000)
    pwm.open(duty_ns=500_000)
    kernel.join()
    assert (sysfs.read("period"), sysfs.read("duty_cycle"), sysfs.read("enable")) == (
        1_000_000, 500_000, 1)
    pwm.close()
    assert (sysfs.read("duty_cycle"), sysfs.read("enable")) == (0, 0)


class RecordingPwm(SysfsPwm):
    def __init__(self, root: Path) -> None:
        super().__init__(root=root, inverted=True)
        self.writes: list[tuple[str, int | str]] = []

    def _write(self, name: str, value: int | str) -> None:
        self.writes.append((name, value))
        super()._write(name, value)


def test_sysfs_order_follows_the_kernel_rules(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    pwm = RecordingPwm(tmp_path)
    pwm.open(duty_ns=100_000)
    names = [name for name, _ in pwm.writes]
    assert names.index("polarity") < names.index("period")  # only while disabled
    assert pwm.writes.index(("duty_cycle", 0)) < names.index("period")  # duty <= period always
    assert pwm.writes[-1] == ("enable", 1)
    assert ("polarity", "inversed") in pwm.writes
    pwm.writes.clear()
    pwm.set_duty_ns(100_000)
    assert pwm.writes == []  # unchanged: not written again


def test_sysfs_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="pwm-2chan"):
        SysfsPwm(root=tmp_path).open()
    FakeSysfs(tmp_path)
    pwm = SysfsPwm(root=tmp_path)
    with pytest.raises(PilotError):
        pwm.set_duty_ns(1)  # not open
    pwm.open()
    with pytest.raises(ConfigurationError):
        pwm.set_duty_ns(2_000_000)
    pwm.close()
    pwm.close()
    missing = SysfsPwm(channel=1, root=tmp_path, export_timeout=0.05)
    with pytest.raises(PilotError):
        missing.open()  # exported, but the kernel never created pwm1
