"""What the sessions API's HTTP framework (aiohttp) adds to the agent's resident memory.

Two child processes import what the agent runs on (the ``ocpp`` and ``websockets``
libraries, the core, the runtime, the store); the second also imports ``aiohttp.web``, starts
the API server on loopback and answers one authenticated request. The difference of their
VmRSS (from /proc/self/status) is the cost of the framework and the server.

    python -m benchmarks.api_memory
"""

from __future__ import annotations

import json
import subprocess
import sys

BASE = """
import ocpp.v16, websockets, agent.runtime, agent.store, agent.csms.link, agent.sessions
"""
WITH_API = BASE + """
import asyncio, urllib.request
from aiohttp import web
from agent.api import server

async def main():
    app = web.Application()
    app.router.add_get("/api/v1/ping", lambda r: web.json_response({"ok": True}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ping").read())
    assert b"ok" in body
    await runner.cleanup()

asyncio.run(main())
"""
REPORT = """
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(int(rss))
"""


def rss_kb(code: str) -> int:
    done = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True,
                          text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    base = min(rss_kb(BASE) for _ in range(3))
    api = min(rss_kb(WITH_API) for _ in range(3))
    print(json.dumps({"without_api_mb": round(base / 1024, 1),
                      "with_api_mb": round(api / 1024, 1),
                      "added_mb": round((api - base) / 1024, 1)}))


if __name__ == "__main__":
    main()
