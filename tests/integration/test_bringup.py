"""``evse-agent bringup``: each role against the simulated site, and what a failing device says.

The checks run in the test's event loop (the world serves its wires from the same loop) with
the same drivers as on a Pi; one test per exit status also runs the command line itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agent import bringup
from agent.config import Config, parse_config
from evsim.site import SimSite

from .conftest import Bench

CARD = "00A1B2C3"
FAST = bringup.Options(yes=True, hold=0.3, settle=0.2, meter_gap=0.3, timeout=5.0)


@dataclass
class Outcome:
    status: int
    out: str
    err: str


async def run_check(role: str, config: Config, **options: object) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    chosen = replace(FAST, out=out, err=err, **options)  # type: ignore[arg-type]
    status = await bringup.check(role, config, chosen)
    return Outcome(status, out.getvalue(), err.getvalue())


def site_config(site: SimSite, *edits: tuple[str, str]) -> Config:
    text = site.agent_config()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    return parse_config(text, "site")


@pytest.fixture
def config(site: SimSite) -> Config:
    return site_config(site)


# --- relay -------------------------------------------------------------------------------------


async def test_relay_closes_for_a_moment_and_its_feedback_agrees(
    config: Config, bench: Bench, site: SimSite
) -> None:
    seen: list[bool] = []
    site.world_server.world.add_input_listener(lambda pin, level: seen.append(level))

    result = await run_check("relay", config)

    assert result.status == bringup.EXIT_OK, result.err
    assert "feedback agreed" in result.out
    assert seen[:2] == [True, False]  # the feedback contact followed: closed, then open
    assert not await bench.relay_closed()


async def test_relay_does_nothing_without_confirmation(config: Config, site: SimSite) -> None:
    asked: list[str] = []

    def decline(prompt: str) -> bool:
        asked.append(prompt)
        return False

    result = await run_check("relay", config, yes=False, confirm=decline)

    assert result.status == bringup.EXIT_FAILED
    assert "live" in asked[0]
    assert "nothing was switched" in result.err
    assert site.world_server.world.snapshot()["outputs"].get("17") != 1.0


async def test_relay_stuck_open_fails_the_check(config: Config, bench: Bench) -> None:
    await bench("fault", 1, "contactor_stuck_open", True)
    result = await run_check("relay", config)
    assert result.status == bringup.EXIT_FAILED
    assert "did not close" in result.err


async def test_welded_contactor_is_reported_before_anything_switches(
    config: Config, bench: Bench
) -> None:
    await bench("fault", 1, "contactor_welded", True)
    await asyncio.sleep(0.1)  # the feedback level crosses the pin bus
    result = await run_check("relay", config)
    assert result.status == bringup.EXIT_FAILED
    assert "welded" in result.err


async def test_relay_refuses_while_an_ev_is_plugged(config: Config, bench: Bench) -> None:
    await bench("plug", 1)
    result = await run_check("relay", config)
    assert result.status == bringup.EXIT_FAILED
    assert "unplug it first" in result.err
    assert not await bench.relay_closed()


# --- meter -------------------------------------------------------------------------------------


async def test_meter_prints_every_value_of_the_map_twice(config: Config) -> None:
    result = await run_check("meter", config)
    assert result.status == bringup.EXIT_OK, result.err
    for name in ("import energy", "power", "frequency", "voltage L3", "current L1"):
        assert result.out.count(name) == 2, name
    assert "1234500.000 Wh" in result.out
    assert "did not go backwards" in result.out


async def test_silent_meter_points_at_wiring_baud_and_id(config: Config, bench: Bench) -> None:
    await bench("fault", 1, "meter_offline", True)
    result = await run_check("meter", config)
    assert result.status == bringup.EXIT_FAILED
    for hint in ("does not answer", "A to A", "baud rate", "device id", "Modbus id 2"):
        assert hint in result.err


async def test_meter_answering_with_exceptions_is_told_apart(config: Config, bench: Bench) -> None:
    await bench("fault", 1, "meter_garbage", True)
    result = await run_check("meter", config)
    assert result.status == bringup.EXIT_FAILED
    assert "Modbus exception" in result.err


async def test_missing_serial_port_is_named(site: SimSite) -> None:
    config = site_config(site, (site.world_server.bus_port, "/dev/ttyUSB-evse-missing"))
    result = await run_check("meter", config)
    assert result.status == bringup.EXIT_FAILED
    assert "/dev/ttyUSB-evse-missing does not exist" in result.err


# --- pilot -------------------------------------------------------------------------------------


async def test_pilot_shows_state_and_registers_and_switches_nothing(
    config: Config, bench: Bench, site: SimSite
) -> None:
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    result = await run_check("pilot", config)
    assert result.status == bringup.EXIT_OK, result.err
    assert "pilot C, offered 0 A" in result.out
    assert "1005     18  firmware version" in result.out
    assert site.world_server.world.evse_board(1).writes == []
    assert not await bench.relay_closed()


async def test_pilot_failure_state_fails_the_check(config: Config, bench: Bench) -> None:
    await bench("fault", 1, "diode_failure", True)
    result = await run_check("pilot", config)
    assert result.status == bringup.EXIT_FAILED
    assert "pilot F" in result.err


async def test_silent_evse_board_fails_with_a_wiring_hint(config: Config, bench: Bench) -> None:
    await bench("fault", 1, "evse_board_offline", True)
    result = await run_check("pilot", config)
    assert result.status == bringup.EXIT_FAILED
    assert "the EVSE board (Modbus id 1" in result.err
    assert "does not answer" in result.err


# --- reader ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def card_held(bench: Bench, uid: str) -> AsyncIterator[None]:
    """Present ``uid`` again and again, as a card held to the reader would be read."""

    async def hold() -> None:
        while True:
            await bench("present_card", uid)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(hold())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_reader_prints_the_uid_of_a_card(config: Config, bench: Bench) -> None:
    async with card_held(bench, CARD):
        result = await run_check("reader", config)
    assert result.status == bringup.EXIT_OK, result.err
    assert f"card {CARD}" in result.out


async def test_reader_without_a_card_times_out_with_hints(config: Config) -> None:
    result = await run_check("reader", config, timeout=0.3)
    assert result.status == bringup.EXIT_FAILED
    assert "no card seen in 0.3 s" in result.err
    assert "9600" in result.err


async def test_unplugged_reader_is_reported_at_once(config: Config, bench: Bench) -> None:
    await bench("fault", 0, "reader_unplugged", True)
    result = await run_check("reader", config)
    assert result.status == bringup.EXIT_FAILED
    assert "does not exist" in result.err


async def test_no_reader_configured_is_a_configuration_error(site: SimSite) -> None:
    config = site_config(site, ('driver = "rdm6300"', 'driver = "none"'))
    result = await run_check("reader", config)
    assert result.status == bringup.EXIT_CONFIG


# --- lock and configuration --------------------------------------------------------------------


async def test_lock_not_configured_is_a_configuration_error(config: Config) -> None:
    result = await run_check("lock", config)
    assert result.status == bringup.EXIT_CONFIG
    assert "no lock configured" in result.err


LOCK = ("[connector.lock]\npin = 20\nunlock_pin = 21\nfeedback_pin = 16\n"
        "pulse = 0.1\ntimeout = 0.5\n")


async def test_lock_locks_and_unlocks_with_feedback(site: SimSite, bench: Bench) -> None:
    config = site_config(site, ("\n[reader]", f"{LOCK}\n[reader]"))
    result = await run_check("lock", config)
    assert result.status == bringup.EXIT_OK, result.err
    assert "locked: feedback locked" in result.out
    assert "unlocked: feedback unlocked" in result.out
    # The motor stops as the check ends (its pins are released); the world sees it a moment
    # later, over the pin bus.
    await bench.until_connector(lambda s: s["lock"] == {"locked": False, "motor": None},
                                what="lock not unlocked with its motor stopped")


async def test_jammed_lock_fails_with_a_wiring_hint(site: SimSite, bench: Bench) -> None:
    config = site_config(site, ("\n[reader]", f"{LOCK}\n[reader]"))
    await bench("fault", 1, "lock_failure", True)
    result = await run_check("lock", config)
    assert result.status == bringup.EXIT_FAILED
    assert "lock: " in result.err and "motor wiring" in result.err


async def test_unknown_connector_is_a_configuration_error(config: Config) -> None:
    result = await run_check("meter", config, connector=3)
    assert result.status == bringup.EXIT_CONFIG
    assert "no connector 3" in result.err


# --- the command line --------------------------------------------------------------------------


async def evse_agent(site: SimSite, *args: str) -> Outcome:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "EVSIM_PIN_BUS": site.pin_bus},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Outcome(process.returncode, out.decode(), err.decode())


async def test_command_line_meter_check_passes(site: SimSite) -> None:
    result = await evse_agent(site, "bringup", "meter", "--config",
                              str(site.write_agent_config()))
    assert result.status == 0, result.err
    assert "meter: OK" in result.out


async def test_command_line_relay_without_terminal_or_yes_switches_nothing(
    site: SimSite, bench: Bench
) -> None:
    result = await evse_agent(site, "bringup", "relay", "--config",
                              str(site.write_agent_config()))
    assert result.status == 1
    assert "nothing was switched" in result.err
    assert not await bench.relay_closed()


async def test_command_line_config_error_exits_2(site: SimSite, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(site.agent_config().replace('driver = "sdm630"', 'driver = "sdm999"'))
    result = await evse_agent(site, "bringup", "meter", "--config", str(bad))
    assert result.status == 2
    assert "connector[1].meter.driver" in result.err
