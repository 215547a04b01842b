"""Nothing lost: the real agent, as a process, killed mid-charge and cut off from its CSMS.

The agent runs as ``python -m agent run --config ...`` (as ``evsim demo`` runs it) against the
simulated site; the world and the CSMS live in the test and outlive the agent, so after a
``kill -9`` the EV is still plugged in and the meter keeps its count. The CSMS's books are the
oracle.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evsim.csms import Csms, Frame, TransactionRecord
from evsim.site import SimSite

from .conftest import Bench

CARD = "00A1B2C3"
pytestmark = pytest.mark.slow


class AgentProcess:
    """The agent as a child process with this site's configuration and state directory."""

    def __init__(self, site: SimSite) -> None:
        self.site = site
        self.config = site.write_agent_config()
        self.process: asyncio.subprocess.Process | None = None
        self.logs: list[Path] = []

    async def start(self) -> None:
        log_path = self.site.workdir / f"agent-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        env = dict(os.environ, EVSIM_PIN_BUS=self.site.pin_bus, PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent", "run", "--config", str(self.config),
                stdout=log, stderr=log, env=env,
            )

    async def kill(self) -> None:
        """kill -9: no shutdown, no last words."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in self.logs if path.exists()
        )


@pytest.fixture
async def agent_process(site: SimSite) -> AsyncIterator[AgentProcess]:
    agent = AgentProcess(site)
    try:
        yield agent
    finally:
        await agent.stop()
        print(agent.tail())  # shown when the test failed
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


async def wait_status(csms: Csms, status: str, connector_id: int = 1) -> None:
    await csms.wait_for(lambda: csms.last_status(connector_id) == status, within=15)


async def start_charging(site: SimSite, bench: Bench) -> TransactionRecord:
    csms = site.csms
    await wait_status(csms, "Available")
    await bench("plug", 1)
    await wait_status(csms, "Preparing")
    await bench("present_card", CARD)
    await csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await wait_status(csms, "Charging")
    await bench.until_relay(True)
    (tx,) = csms.transactions.values()
    return tx


def unique_id(frame: Frame) -> str:
    return str(json.loads(frame.raw)[1])


def sent_twice_after_confirmation(csms: Csms) -> list[str]:
    """Calls from the charger that the CSMS had answered and then received again."""
    confirmed = {unique_id(f) for f in csms.frames if f.direction == "out" and
                 f.message_type == 3}
    counts = Counter(unique_id(f) for f in csms.calls())
    return [uid for uid in confirmed if counts[uid] > 1]


def meter_value_calls(csms: Csms) -> list[Frame]:
    """Every MeterValues the charger sent, resends of one call counted once."""
    seen: set[str] = set()
    calls = []
    for frame in csms.calls("MeterValues"):
        if unique_id(frame) not in seen:
            seen.add(unique_id(frame))
            calls.append(frame)
    return calls


def sample_times(frame: Frame) -> list[datetime]:
    return [datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00"))
            for v in frame.payload["meterValue"]]


async def test_a_transaction_cut_by_kill_9_is_stopped_once_with_power_loss_and_the_meter(
    site: SimSite, bench: Bench, agent_process: AgentProcess
) -> None:
    csms = site.csms
    await agent_process.start()
    tx = await start_charging(site, bench)
    await csms.wait_for_action("MeterValues", count=2)
    await asyncio.sleep(0.3)  # between two samples (1 s apart), the last one confirmed

    await agent_process.kill()
    await bench.until_relay(False)  # a dead Pi drives nothing: the contactor drops out
    await asyncio.sleep(0.3)  # and the meter stops counting
    register = (await bench.connector())["meter"]["energy_wh"]
    assert tx.stop_count == 0

    await agent_process.start()  # the same configuration and state directory
    await csms.wait_for(lambda: tx.stop_count, within=15)
    await wait_status(csms, "Preparing")  # the EV is still plugged in; no new session
    await agent_process.stop()  # an ordered shutdown has nothing left to stop

    assert (tx.stop_count, tx.reason, tx.stop_id_tag) == (1, "PowerLoss", None)
    assert tx.meter_stop == int(register) > tx.meter_start
    last_sample = max(t for f in meter_value_calls(csms) for t in sample_times(f))
    assert datetime.fromisoformat(str(tx.stopped).replace("Z", "+00:00")) == last_sample
    assert list(csms.transactions) == [tx.transaction_id]
    assert sent_twice_after_confirmation(csms) == []
    assert len(csms.calls("StartTransaction")) == 1


async def test_meter_values_taken_during_an_outage_arrive_in_order_before_the_stop(
    site: SimSite, bench: Bench, agent_process: AgentProcess
) -> None:
    csms = site.csms
    await agent_process.start()
    tx = await start_charging(site, bench)
    await csms.wait_for_action("MeterValues", count=2)

    await csms.go_down()
    down_at = datetime.now(UTC)
    await asyncio.sleep(4)  # charging goes on, samples are journaled
    assert await bench.relay_closed()
    up_at = datetime.now(UTC)
    await csms.come_back()
    sent_before = len(meter_value_calls(csms))
    await csms.wait_for(lambda: len(meter_value_calls(csms)) >= sent_before + 4, within=15)

    await bench("unplug", 1)
    await csms.wait_for(lambda: tx.stop_count, within=15)

    calls = meter_value_calls(csms)
    assert {f.payload.get("transactionId") for f in calls} == {tx.transaction_id}
    times = [t for f in calls for t in sample_times(f)]
    assert times == sorted(times) and len(set(times)) == len(times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) < 2.5, f"a sample is missing: gaps {gaps}"  # every second, outage or not
    assert sum(down_at < t < up_at for t in times) >= 3  # taken offline, delivered later
    (stop,) = csms.calls("StopTransaction")
    assert all(f.at < stop.at for f in calls)
    assert (tx.reason, tx.stop_count) == ("EVDisconnected", 1)
