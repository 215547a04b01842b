"""A whole simulated site on loopback: the world (devices, EV, bench API) and a local CSMS.

Used by the demo and by the integration tests. It also writes the agent configuration that
points the agent's real drivers at this site's wires, so the agent runs unchanged.
"""

from __future__ import annotations

import contextlib
import random
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from evsim.csms import Csms
from evsim.csms201 import Csms201
from evsim.csms_base import CsmsServer
from evsim.world_config import Address, ConnectorConfig, WorldConfig
from evsim.world_server import WorldServer

CHARGER_ID = "SIM-0001"
TAMPER_PIN = 7  # BCM; free on the reference board (which has no tamper switch)


# Ports handed out come from below Linux's ephemeral range (32768-60999 by default): a port
# the kernel picked with bind(0) is freed again before the server binds it, and in that gap
# any outgoing connection (of this process or a parallel test worker) may get it as its
# local port. Below the range only another free_port() could take it.
_PORT_RANGE = (20000, 32700)
_given: set[int] = set()


def free_port() -> int:
    """A loopback TCP port free now, never handed out before by this process."""
    for _ in range(200):
        port = random.randrange(*_PORT_RANGE)
        if port in _given:
            continue
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_PORT_RANGE}")


PHASE_PINS = (4, 7)  # BCM (relay, feedback) of connector 1's phase relay, when asked for


@dataclass
class SiteOptions:
    connectors: int = 1
    sample_interval: int = 10
    heartbeat_interval: int = 60
    connection_timeout: int = 60
    max_current: int = 16
    ocpp_frames: bool = True
    extra_ocpp: str = ""  # more lines for the [ocpp] table
    extra_csms: str = ""  # more lines for the [csms] table, e.g. "call_timeout = 1"
    extra_authorization: str = ""  # more lines for [authorization], e.g. "authorize_timeout = 1"
    free_vend_id_tag: str | None = None  # [authorization] mode = "free" with this idTag
    # The token reader module on the world's reader pty, and the agent's [reader] driver for
    # it: "rdm6300" or "pn532" (evsim.world_config.READER_MODELS).
    reader: str = "rdm6300"
    # Who drives the control pilot of every connector: "evse-board" (Modbus) or "pwm" (the
    # agent's own sysfs PWM, in the world's tree under workdir/pwm, and an MCP3008 on SPI0
    # CE0 whose inputs the world describes; connector N: PWM channel and ADC input N - 1).
    pilot: str = "evse-board"
    # Wiring the agent is told about, where the world has it (connector 1 on the reference
    # board: lock motor 20/21 with feedback 16, RCD trip input 26). Left out: a fixed cable
    # and no RCD input.
    lock: bool = False
    rcd: bool = False
    indicator: bool = False  # an RGB LED and a buzzer on pins the world leaves alone
    tamper: bool = False  # an enclosure tamper switch on TAMPER_PIN, in the world and the agent
    ocpp_version: str = "1.6"  # or "2.0.1": the site's CSMS speaks it, the agent is told to
    extra_toml: str = ""  # more tables at the end, e.g. "[update]\nreleases = ..." or [api]
    # A 1<->3 phase relay on connector 1 (world and agent: pin 4, feedback 7); the string is
    # more lines for the agent's [connector.phase_switch], e.g. "min_interval = 20". None: none.
    phase_switch: str | None = None


class SimSite:
    """``async with SimSite(workdir) as site:`` starts a CSMS and a world on free ports."""

    def __init__(self, workdir: Path, options: SiteOptions | None = None) -> None:
        self.workdir = workdir
        self.options = options or SiteOptions()
        self.server: CsmsServer[Any] = (
            Csms201() if self.options.ocpp_version == "2.0.1" else Csms())
        self.world_server = WorldServer(self._world_config())
        self._stack = contextlib.AsyncExitStack()

    def _world_config(self) -> WorldConfig:
        connectors = [ConnectorConfig.for_id(i, pilot=self.options.pilot, **self._phase_pins(i))
                      for i in range(1, self.options.connectors + 1)]
        return WorldConfig(
            site=CHARGER_ID,
            bench=Address("127.0.0.1", 0),
            pin_bus=Address("127.0.0.1", 0),
            bus=Address("127.0.0.1", free_port()),
            reader=self.options.reader,
            reader_link=self.workdir / "reader",
            state_file=self.workdir / "world.json",
            connectors=connectors,
            tamper_pin=TAMPER_PIN if self.options.tamper else None,
            pwm_root=self.workdir / "pwm",
        )

    def _phase_pins(self, connector_id: int) -> dict[str, int]:
        if self.options.phase_switch is None or connector_id != 1:
            return {}
        return {"phase_pin": PHASE_PINS[0], "phase_feedback_pin": PHASE_PINS[1]}

    @property
    def csms(self) -> Csms:
        """The OCPP 1.6 CSMS (the default site)."""
        assert isinstance(self.server, Csms), "this site speaks OCPP 2.0.1: use csms201"
        return self.server

    @property
    def csms201(self) -> Csms201:
        """The OCPP 2.0.1 CSMS of a site with ``ocpp_version = "2.0.1"``."""
        assert isinstance(self.server, Csms201), "this site speaks OCPP 1.6: use csms"
        return self.server

    async def __aenter__(self) -> SimSite:
        await self._stack.enter_async_context(self.server)
        await self._stack.enter_async_context(self.world_server)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stack.aclose()

    @property
    def bench_url(self) -> str:
        return self.world_server.bench_url

    @property
    def pin_bus(self) -> str:
        return str(self.world_server.pin_bus_address)

    def agent_config(self) -> str:
        """The agent's TOML for this site."""
        o = self.options
        connectors = "\n".join(self._connector_toml(c) for c in self.world_server.config.connectors)
        return f"""\
[charger]
id = "{CHARGER_ID}"
state_dir = "{self.workdir / 'state'}"

[csms]
url = "{self.server.url}"
ocpp_version = "{o.ocpp_version}"
reconnect_min = 0.2
reconnect_max = 2.0
{o.extra_csms}

[ocpp]
heartbeat_interval = {o.heartbeat_interval}
meter_value_sample_interval = {o.sample_interval}
connection_timeout = {o.connection_timeout}
{o.extra_ocpp}

{self._authorization_toml()}
[gpio]
pin_factory = "evsim"

[[bus]]
name = "rs485"
type = "rtu"
port = "{self.world_server.bus_port}"
baudrate = 9600
timeout = 0.5

{connectors}

[reader]
driver = "{o.reader}"
port = "{self.world_server.reader_port}"
{self._indicator_toml()}{self._tamper_toml()}
[log]
level = "INFO"
ocpp_frames = {'true' if o.ocpp_frames else 'false'}
{o.extra_toml}
"""

    def _authorization_toml(self) -> str:
        tag = self.options.free_vend_id_tag
        extra = self.options.extra_authorization
        free = f'mode = "free"\nfree_id_tag = "{tag}"\n' if tag else ""
        return f"[authorization]\n{free}{extra}\n" if free or extra else ""

    def _indicator_toml(self) -> str:
        if not self.options.indicator:
            return ""
        return "\n[indicator]\nred_pin = 12\ngreen_pin = 13\nblue_pin = 19\nbuzzer_pin = 18\n"

    def _tamper_toml(self) -> str:
        config = self.world_server.config
        if config.tamper_pin is None:
            return ""
        return (f"\n[tamper]\npin = {config.tamper_pin}\n"
                f"active_high = {_toml_bool(config.tamper_active_high)}\n")

    def _optional_toml(self, c: ConnectorConfig) -> str:
        """The lock and RCD tables, where asked for and wired in the world."""
        parts = []
        if self.options.lock and c.lock_pin is not None and c.unlock_pin is not None:
            feedback = ("" if c.lock_feedback_pin is None
                        else f"feedback_pin = {c.lock_feedback_pin}\n")
            parts.append(f"[connector.lock]\npin = {c.lock_pin}\nunlock_pin = {c.unlock_pin}\n"
                         f"{feedback}active_high = {_toml_bool(c.lock_active_high)}\n"
                         f"feedback_active_high = {_toml_bool(c.lock_feedback_active_high)}\n")
        if self.options.phase_switch is not None and c.phase_pin is not None:
            feedback = ("" if c.phase_feedback_pin is None
                        else f"feedback_pin = {c.phase_feedback_pin}\n")
            parts.append(f"[connector.phase_switch]\npin = {c.phase_pin}\n{feedback}"
                         f"{self.options.phase_switch}\n")
        if self.options.rcd and c.rcd_pin is not None:
            parts.append(f"[connector.rcd]\npin = {c.rcd_pin}\n"
                         f"active_high = {_toml_bool(c.rcd_active_high)}\n")
        return "".join(parts)

    def _connector_toml(self, c: ConnectorConfig) -> str:
        feedback = f"feedback_pin = {c.feedback_pin}\n" if c.feedback_pin is not None else ""
        return f"""\
[[connector]]
id = {c.id}
max_current = {self.options.max_current}
phases = {c.phases}
[connector.contactor]
pin = {c.relay_pin}
{feedback}{self._pilot_toml(c)}[connector.meter]
driver = "{c.meter_model}"
bus = "rs485"
device_id = {c.meter_id}
{self._optional_toml(c)}"""

    def _pilot_toml(self, c: ConnectorConfig) -> str:
        if c.pilot == "pwm":
            return (f'[connector.pilot]\ndriver = "pwm"\npwm_root = "{self.workdir / "pwm"}"\n'
                    f"pwm_chip = {c.pwm_chip}\npwm_channel = {c.pwm_channel}\n"
                    f"adc_channel = {c.adc_channel}\npoll_interval = 0.05\n")
        return (f'[connector.pilot]\ndriver = "evse-board"\nbus = "rs485"\n'
                f"device_id = {c.evse_board_id}\npoll_interval = 0.02\n")

    def write_agent_config(self) -> Path:
        path = self.workdir / "agent.toml"
        path.write_text(self.agent_config())
        return path


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"
