"""The simulated world, served: the bench API, the pin bus and the Modbus bus on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from gpiozero import DigitalInputDevice, OutputDevice
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerType

from evsim.bench_client import BenchClient, BenchError
from evsim.pins import WorldPinFactory
from evsim.world_config import Address, ConnectorConfig, WorldConfig
from evsim.world_server import WorldServer
from hal.contactor_gpio import GpioContactor
from hal.gpio import make_pin_factory

T = TypeVar("T")
ANY_PORT = Address("127.0.0.1", 0)


async def eventually(probe: Callable[[], T], within: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {value!r})")
        await asyncio.sleep(0.02)


def world_config(tmp_path: Path) -> WorldConfig:
    return WorldConfig(
        bench=ANY_PORT,
        pin_bus=ANY_PORT,
        bus=ANY_PORT,
        reader_link=tmp_path / "reader",
        state_file=tmp_path / "world.json",
        connectors=[ConnectorConfig.for_id(1)],
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WorldServer]:
    async with WorldServer(world_config(tmp_path)) as running:
        yield running


@pytest.fixture
def bench(server: WorldServer) -> BenchClient:
    return BenchClient(server.bench_url)


@pytest.fixture
def pins(server: WorldServer) -> Any:
    factory = WorldPinFactory(str(server.pin_bus_address))
    yield factory
    factory.close()


async def call(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


# -- verbs -------------------------------------------------------------------------------------


async def test_state_describes_the_site(server: WorldServer, bench: BenchClient) -> None:
    state = await call(bench.state)
    (connector,) = state["connectors"]
    assert connector["id"] == 1
    assert connector["ev"] == {
        "plugged": False, "state": "A", "draw_a": None, "max_current_a": 32.0, "phases": 3,
    }
    assert connector["pilot"] == "A"
    assert connector["contactor"] == {
        "relay_closed": False, "feedback_closed": False, "fault": None,
    }
    assert connector["offered_current_a"] == 0
    assert connector["meter"]["energy_wh"] == pytest.approx(1234500.0)
    assert connector["meter"]["power_w"] == 0
    assert state["reader"]["link"] == server.reader_port
    target = await call(os.path.realpath, server.reader_port)
    assert target.startswith("/dev/pts/")


async def test_plug_ev_and_unplug_are_idempotent(bench: BenchClient) -> None:
    for _ in range(2):
        answer = await call(bench.plug, 1)
        assert answer["ev"]["plugged"] and answer["ev"]["state"] == "B"
        assert answer["pilot"] == "B"
    for _ in range(2):
        answer = await call(bench.ev_state, 1, "C")
        assert answer["ev"]["state"] == "C" and answer["pilot"] == "C"
    answer = await call(bench.plug, 1)  # plugging a plugged EV changes nothing
    assert answer["ev"]["state"] == "C"
    for _ in range(2):
        answer = await call(bench.unplug, 1)
        assert answer["ev"]["state"] == "A" and answer["pilot"] == "A"


async def test_draw_is_idempotent_and_resettable(bench: BenchClient) -> None:
    for _ in range(2):
        assert (await call(bench.draw, 1, 10))["ev"]["draw_a"] == 10.0
    assert (await call(bench.draw, 1, None))["ev"]["draw_a"] is None


async def test_state_is_persisted_on_every_change(
    server: WorldServer, bench: BenchClient, tmp_path: Path
) -> None:
    await call(bench.plug, 1)
    saved = json.loads((tmp_path / "world.json").read_text())
    assert saved["connectors"]["1"]["ev_state"] == "B"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_bench", "status", "field"),
    [
        (lambda b: b.plug(9), 404, None),
        (lambda b: b.ev_state(9, "C"), 404, None),
        (lambda b: b.ev_state(1, "X"), 400, "state"),
        (lambda b: b.draw(1, -1), 400, "amps"),
        (lambda b: b.draw(1, "lots"), 400, "amps"),
        (lambda b: b.present_card("A1B2"), 400, "uid"),
        (lambda b: b.present_card("00A1B2CZ"), 400, "uid"),
        (lambda b: b.ev_state(1, "C"), 409, None),  # no EV plugged in
    ],
)
async def test_bad_requests_are_refused_with_a_message(
    bench: BenchClient, call_bench: Callable[[BenchClient], Any], status: int, field: str | None
) -> None:
    with pytest.raises(BenchError) as refused:
        await call(call_bench, bench)
    assert refused.value.status == status
    assert refused.value.message
    assert refused.value.field == field


def raw_request(url: str, method: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/api/connectors/1/ev", b"{not json", 400, "not valid JSON"),
        ("POST", "/api/connectors/1/ev", b"[1]", 400, "JSON object"),
        ("POST", "/api/connectors/1/ev", b"{}", 400, "missing field 'state'"),
        ("POST", "/api/connectors/1/draw", b'{"amps": true}', 400, "amps"),
        ("GET", "/api/nowhere", None, 404, "no such path"),
        ("POST", "/api/connectors/1/fly", b"{}", 404, "no such path"),
        ("GET", "/api/connectors/1/plug", None, 405, "not allowed"),
    ],
)
async def test_malformed_requests(
    server: WorldServer, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    code, answer = await call(raw_request, server.bench_url + path, method, body)
    assert code == status
    assert message in answer["error"]


# -- the token reader --------------------------------------------------------------------------


async def test_card_goes_out_as_an_rdm6300_frame(server: WorldServer, bench: BenchClient) -> None:
    fd = os.open(server.reader_port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        answer = await call(bench.present_card, "00a1b2c3")
        assert answer["uid"] == "00A1B2C3" and answer["card_id"] == 0x00A1B2C3
        received = bytearray()

        def frame_arrived() -> bool:
            try:
                received.extend(os.read(fd, 1024))
            except BlockingIOError:
                pass
            return b"\x020F00A1B2C3DF\x03" in received

        await eventually(frame_arrived)
    finally:
        os.close(fd)


# -- the pin bus -------------------------------------------------------------------------------


def contactor(bench: BenchClient) -> dict[str, Any]:
    state: dict[str, Any] = bench.connector(1)["contactor"]
    return state


async def test_relay_output_reaches_the_world_and_feedback_follows(
    bench: BenchClient, pins: WorldPinFactory
) -> None:
    relay = OutputDevice(17, pin_factory=pins)
    feedback = DigitalInputDevice(27, pull_up=None, active_state=True, pin_factory=pins)
    edges: list[tuple[bool, str]] = []
    feedback.when_activated = lambda: edges.append((True, threading.current_thread().name))
    await eventually(lambda: pins.connected)

    relay.on()
    await eventually(lambda: contactor(bench)["relay_closed"])
    await eventually(lambda: contactor(bench)["feedback_closed"])
    await eventually(lambda: feedback.is_active)
    assert edges and edges[0][1] != threading.main_thread().name  # the bus's thread

    relay.off()
    await eventually(lambda: not contactor(bench)["relay_closed"])
    await eventually(lambda: not feedback.is_active)
    relay.close()
    feedback.close()


async def test_a_dead_charger_releases_the_relay(
    server: WorldServer, bench: BenchClient
) -> None:
    factory = WorldPinFactory(str(server.pin_bus_address))
    relay = OutputDevice(17, pin_factory=factory)
    relay.on()
    await eventually(lambda: contactor(bench)["relay_closed"])
    factory.close()  # like the agent's process dying: the pins float
    await eventually(lambda: not contactor(bench)["relay_closed"])


async def test_pins_work_without_a_world() -> None:
    factory = WorldPinFactory("127.0.0.1:1")
    try:
        relay = OutputDevice(17, pin_factory=factory)
        relay.on()
        assert relay.value == 1
        relay.off()
        assert relay.value == 0
        assert not factory.connected
    finally:
        factory.close()


async def test_hal_contactor_on_the_evsim_factory_chosen_by_name(
    server: WorldServer, bench: BenchClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVSIM_PIN_BUS", str(server.pin_bus_address))
    factory = make_pin_factory("evsim")
    assert isinstance(factory, WorldPinFactory)
    driver = GpioContactor(17, feedback_pin=27, pin_factory=factory)
    try:
        await eventually(lambda: factory.connected)
        driver.set_closed(True)
        await eventually(lambda: driver.feedback_closed)
        assert contactor(bench)["relay_closed"]
        driver.set_closed(False)
        await eventually(lambda: driver.feedback_closed is False)
    finally:
        driver.close()
        factory.close()


# -- physics -----------------------------------------------------------------------------------


async def test_ev_charges_through_a_closed_contactor_and_the_meter_counts(
    server: WorldServer, bench: BenchClient, pins: WorldPinFactory
) -> None:
    await call(bench.plug, 1)
    await call(bench.ev_state, 1, "C")
    server.world.evse_board(1).configured_current = 16  # what the agent writes to reg 1000
    idle = await eventually(lambda: bench.connector(1)["offered_current_a"] == 16 and
                            bench.connector(1))
    assert idle["meter"]["power_w"] == 0  # offered, but the contactor is still open

    relay = OutputDevice(17, pin_factory=pins)
    relay.on()
    charging = await eventually(lambda: bench.connector(1)["meter"]["power_w"] > 0 and
                                bench.connector(1))
    assert charging["meter"]["current_a"] == [16.0, 16.0, 16.0]
    assert charging["meter"]["power_w"] == pytest.approx(3 * 230 * 16)
    start = charging["meter"]["energy_wh"]
    await eventually(lambda: bench.connector(1)["meter"]["energy_wh"] > start + 0.1)

    await call(bench.draw, 1, 10)
    await eventually(lambda: bench.connector(1)["meter"]["current_a"][0] == 10.0)
    relay.off()
    await eventually(lambda: bench.connector(1)["meter"]["power_w"] == 0)
    relay.close()


async def test_the_evse_board_on_the_bus_mirrors_the_ev(
    server: WorldServer, bench: BenchClient
) -> None:
    client = AsyncModbusSerialClient(server.bus_port, framer=FramerType.RTU, timeout=1, retries=1)
    assert await client.connect()
    try:
        await call(bench.plug, 1)
        reply = await client.read_holding_registers(1002, count=1, device_id=1)
        assert reply.registers == [2]  # B: EV present
        await client.write_register(1000, 13, device_id=1)
        await eventually(lambda: bench.connector(1)["offered_current_a"] == 13)
    finally:
        client.close()
