"""Building blocks of the OCTT cases (the "reusable states" of the test case document)."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.v16 import call

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
