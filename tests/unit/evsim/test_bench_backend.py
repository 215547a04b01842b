"""The bench backend contract: the world and the reference relay bench satisfy it, the API
serves any backend, and ``evsim bench serve`` loads one by ``module:Class``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from evsim.bench_api import BenchApi
from evsim.bench_backend import (
    BackendLoadError,
    BenchBackend,
    ConflictError,
    InvalidValueError,
    UnknownConnectorError,
    load_backend,
)
from evsim.bench_client import BenchClient, BenchError
from evsim.bench_relays import RelayBench
from evsim.site import free_port
from evsim.world import World
from evsim.world_config import Address, WorldConfig

ROOT = Path(__file__).resolve().parents[3]
EVSIM = [sys.executable, "-c", "import sys; from evsim.cli import main; sys.exit(main())"]
OPTIONS: dict[str, Any] = {
    "settle_s": 0, "card_hold_s": 0,
    "connectors": [{"id": 1, "plug_relay": 5, "ready_relay": 6, "coil_tap": 13, "load_tap": 19,
                    "faults": {"meter_offline": 12}}],
    "station_faults": {"reader_unplugged": 21},
    "cards": [{"uid": "04a2b3c4d5e680", "servo": 18}],
}


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.close()


@pytest.fixture
def relay_bench(pins: MockFactory) -> Iterator[RelayBench]:
    bench = RelayBench(OPTIONS, pin_factory=pins)
    yield bench
    bench.close()


def level(pins: MockFactory, pin: int) -> bool:
    return bool(pins.pin(pin).state)


def test_the_world_and_the_relay_bench_are_bench_backends(relay_bench: RelayBench) -> None:
    assert isinstance(World(WorldConfig(reader_link=None)), BenchBackend)
    assert isinstance(relay_bench, BenchBackend)


def test_relay_bench_switches_the_ev_simulator(pins: MockFactory,
                                               relay_bench: RelayBench) -> None:
    # Relay boards are active-low by default: a low pin level energizes the relay.
    assert relay_bench.plug(1)["ev"] == {"plugged": True, "state": "B"}
    assert not level(pins, 5) and level(pins, 6)
    assert relay_bench.set_ev_state(1, "C")["ev"]["state"] == "C"
    assert not level(pins, 6)
    assert relay_bench.plug(1)["ev"]["state"] == "C"  # idempotent: a plugged EV stays
    assert relay_bench.unplug(1)["ev"] == {"plugged": False, "state": "A"}
    assert level(pins, 5) and level(pins, 6)


def test_relay_bench_reads_the_contactor_taps(pins: MockFactory,
                                              relay_bench: RelayBench) -> None:
    pins.pin(13).drive_high()
    assert relay_bench.connector_state(1)["contactor"] == {
        "relay_closed": True, "feedback_closed": False}


def test_relay_bench_refuses_what_it_cannot_do(relay_bench: RelayBench) -> None:
    with pytest.raises(ConflictError):
        relay_bench.set_ev_state(1, "C")  # no EV plugged
    with pytest.raises(ConflictError):
        relay_bench.set_fault(1, "contactor_welded", True)  # no relay for it
    with pytest.raises(ConflictError):
        relay_bench.set_draw(1, 10)
    with pytest.raises(ConflictError):
        relay_bench.present_card("DEADBEEF")
    with pytest.raises(InvalidValueError):
        relay_bench.set_fault(1, "meteor_strike", True)
    with pytest.raises(UnknownConnectorError):
        relay_bench.plug(2)


def test_relay_bench_faults_and_cards(pins: MockFactory, relay_bench: RelayBench) -> None:
    assert relay_bench.set_fault(1, "meter_offline", True)["faults"] == ["meter_offline"]
    assert relay_bench.set_fault(0, "reader_unplugged", True)["faults"] == ["reader_unplugged"]
    assert relay_bench.present_card("04A2B3C4D5E680") == {"uid": "04A2B3C4D5E680"}
    assert pins.pin(18).state == pytest.approx(0.05)  # the servo is back at its rest position


def test_the_api_serves_any_backend(relay_bench: RelayBench) -> None:
    api = BenchApi(relay_bench, Address("127.0.0.1", 0))
    api.start()
    try:
        client = BenchClient(api.url)
        assert client.plug(1)["ev"]["plugged"] is True
        with pytest.raises(BenchError) as refused:
            client.fault(1, "rcd_trip", True)
        assert refused.value.status == 409
        with pytest.raises(BenchError) as unknown:
            client.plug(7)
        assert unknown.value.status == 404
    finally:
        api.close()


def test_load_backend_names_what_is_wrong() -> None:
    for spec in ("no-colon", "evsim.nonexistent:Bench", "evsim.bench_relays:Nope",
                 "evsim.world_config:Address"):
        with pytest.raises(BackendLoadError, match="backend"):
            load_backend(spec, {})


def test_evsim_bench_serve_loads_a_backend_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "bench.toml"
    config.write_text('settle_s = 0\n[[connectors]]\nid = 1\nplug_relay = 5\nready_relay = 6\n'
                      'coil_tap = 13\nload_tap = 19\n')
    port = free_port()
    process = subprocess.Popen(
        [*EVSIM, "bench", "serve", "--backend", "evsim.bench_relays:RelayBench",
         "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = BenchClient(f"http://127.0.0.1:{port}", timeout=1.0)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.unplug(1)["ev"]["plugged"] is False
                break
            except BenchError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert client.plug(1)["ev"]["plugged"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "RelayBench" in out


def test_evsim_bench_serve_with_a_bad_backend_exits_2() -> None:
    result = subprocess.run(
        [*EVSIM, "bench", "serve", "--backend", "nowhere:Bench"],
        capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 2
    assert "nowhere:Bench" in result.stderr
