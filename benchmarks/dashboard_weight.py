"""The dashboard's page weight: every file the page loads, as the agent serves it.

Serves the dashboard's routes (:func:`agent.api.dashboard.add_dashboard`) on loopback and
fetches each file twice, with ``Accept-Encoding: identity`` and ``gzip``, counting the bytes
on the wire (the client does not decompress).

    python -m benchmarks.dashboard_weight
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientSession, web

from agent.api.dashboard import add_dashboard

PAGES = ("", "app.js", "style.css")  # "" is /dashboard/ (index.html); nothing else is loaded


async def weigh() -> dict[str, dict[str, int]]:
    app = web.Application()
    add_dashboard(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found: dict[str, dict[str, int]] = {}
    try:
        async with ClientSession(auto_decompress=False) as http:
            for name in PAGES:
                sizes = {}
                for encoding in ("identity", "gzip"):
                    async with http.get(f"http://127.0.0.1:{port}/dashboard/{name}",
                                        headers={"Accept-Encoding": encoding}) as response:
                        sizes[encoding] = len(await response.read())
                found[name or "index.html"] = {"bytes": sizes["identity"],
                                               "gzipped": sizes["gzip"]}
    finally:
        await runner.cleanup()
    found["total"] = {key: sum(f[key] for f in found.values()) for key in ("bytes", "gzipped")}
    return found


def main() -> None:
    print(json.dumps(asyncio.run(weigh()), indent=2))


if __name__ == "__main__":
    main()
