"""Building blocks of the OCTT cases (the "reusable states" of the test case document)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp.v16 import call

from agent.app import Agent
from evsim.csms import Frame
from evsim.site import SimSite
from tests.integration.conftest import Bench

VALID = "00A1B2C3"
VALID_2 = "00D4E5F6"
INVALID = "0BADBAD0"
READER_REPEAT_WINDOW = 1.0


async def status(site: SimSite, value: str, connector_id: int = 1, within: float = 10.0) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(connector_id) == value, within)


async def booted(site: SimSite, connectors: int = 1) -> None:
    for cid in range(0, connectors + 1):
        await status(site, "Available", cid)


async def change(site: SimSite, key: str, value: str) -> str:
    result = await site.csms.call(call.ChangeConfiguration(key=key, value=value))
    return str(result.status)


async def charging(site: SimSite, bench: Bench, tag: str = VALID) -> int:
    """Plug, present the tag, EV in C: returns the transactionId."""
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("ev_state", 1, "C")
    await bench("present_card", tag)
    await status(site, "Charging")
    (tx,) = [t for t in site.csms.transactions.values() if t.meter_stop is None]
    return tx.transaction_id


async def present_again(bench: Bench, tag: str) -> None:
    """A new presentation of a card, not the same one held on the reader."""
    await asyncio.sleep(READER_REPEAT_WINDOW)
    await bench("present_card", tag)


def actions_since(site: SimSite, index: int) -> list[str]:
    frames = site.csms.frames[index:]
    return [f.action for f in frames if f.direction == "in" and f.message_type == 2]


def payloads(site: SimSite, action: str) -> list[dict[str, Any]]:
    return [f.payload for f in site.csms.calls(action)]


async def until(predicate: Callable[[], object], within: float = 10.0,
                what: str = "the condition") -> None:
    """Poll the agent's own state (the CSMS's books have ``csms.wait_for``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} never held within {within}s")
        await asyncio.sleep(0.02)


async def offline(site: SimSite, agent: Agent) -> None:
    """[cut the connection]: the CSMS goes down and the agent has noticed."""
    await site.csms.go_down()
    await until(lambda: not agent.link.up, what="the link going down")


async def online(site: SimSite, agent: Agent) -> int:
    """[restore the connection]; returns the index of the first frame after the outage."""
    mark = len(site.csms.frames)
    await site.csms.come_back()
    await until(lambda: agent.link.up, what="the link coming back")
    return mark


def statuses_since(site: SimSite, index: int, connector_id: int = 1) -> list[str]:
    """The StatusNotifications of a connector in the frames from ``index`` on."""
    return [f.payload["status"] for f in site.csms.frames[index:]
            if f.direction == "in" and f.message_type == 2 and f.action == "StatusNotification"
            and f.payload["connectorId"] == connector_id]


def unique_id(frame: Frame) -> str:
    return str(json.loads(frame.raw)[1])


def first_sends(site: SimSite, action: str) -> list[Frame]:
    """Every call ``action`` the charger sent, a resend of the same call counted once."""
    seen: set[str] = set()
    frames = []
    for frame in site.csms.calls(action):
        if unique_id(frame) not in seen:
            seen.add(unique_id(frame))
            frames.append(frame)
    return frames


def sample_times(frame: Frame) -> list[datetime]:
    """The timestamps of the samples in a MeterValues call."""
    return [datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00"))
            for v in frame.payload["meterValue"]]


async def energy_stopped(bench: Bench, connector_id: int = 1, within: float = 5.0) -> None:
    """Wait until the offer is "no charging" and no power flows (the contactor may still be
    in its grace period while the EV stays in C)."""
    async def flowing() -> bool:
        state = await bench.connector(connector_id)
        return bool(state["offered_current_a"] or state["meter"]["power_w"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await flowing():
        if loop.time() > deadline:
            raise TimeoutError(f"energy still flows on connector {connector_id}")
        await asyncio.sleep(0.05)
