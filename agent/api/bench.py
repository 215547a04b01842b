"""The simulated world's bench controls, relayed for the dashboard (simulation only).

The dashboard's page comes from the agent; the bench API (``hardware-sim/evsim/bench_api.py``)
listens on another port without CORS headers, so a browser may not call it directly. The agent
relays the few verbs a newcomer plays with (plug, unplug, EV state, present a card, the
site's state) to ``api.bench_url``, which the configuration accepts only for a simulated
charger (``gpio.pin_factory = "evsim"``): a real charger has no such route at all.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

BENCH_TIMEOUT = 5.0
VERBS = ("plug", "unplug", "ev")


class BenchUnreachable(Exception):
    """The bench API did not answer (the world is not running)."""


class BenchProxy:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None
                   ) -> tuple[int, Any]:
        """(status, JSON answer) of the bench API for ``path`` (``/api/state``, ...)."""
        timeout = aiohttp.ClientTimeout(total=BENCH_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.request(
                    method, self.url + path,
                    data=json.dumps(body) if body is not None else None,
                    headers={"Content-Type": "application/json"}) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise BenchUnreachable(f"the bench API at {self.url} did not answer: "
                                   f"{error or type(error).__name__}") from None
