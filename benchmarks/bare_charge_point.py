"""The floor the footprint is compared with: a charge point made of ``ocpp`` and ``websockets``.

It connects to the CSMS at URL as charge point BARE-0001, sends BootNotification, prints
"ready" and then only answers the CSMS and sends Heartbeat at the interval the CSMS gave, as
any OCPP 1.6 charger must. No hardware, no journal: what a Python OCPP charger costs at
least on this machine, so the agent's figures can be given as ratios that compare across
machines (benchmarks/footprint.py).

    python -m benchmarks.bare_charge_point ws://127.0.0.1:9000/ocpp
"""

from __future__ import annotations

import asyncio
import sys

from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect

CHARGE_POINT_ID = "BARE-0001"


async def run(url: str) -> None:
    async with connect(f"{url.rstrip('/')}/{CHARGE_POINT_ID}", subprotocols=["ocpp1.6"]) as ws:
        charge_point = ChargePoint(CHARGE_POINT_ID, ws)
        receiving = asyncio.create_task(charge_point.start())
        boot = await charge_point.call(call.BootNotification(
            charge_point_model="bare", charge_point_vendor="benchmarks"))
        print("ready", flush=True)
        interval = max(int(boot.interval), 1)
        while not receiving.done():
            await asyncio.sleep(interval)
            await charge_point.call(call.Heartbeat())


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
