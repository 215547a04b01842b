"""The evsim CSMS in a process of its own, for benchmarks that should not share the agent's CPU.

Prints ``{"url": ...}`` on one line once it listens; then, for each line ``N`` read on stdin,
prints what it booked (:func:`benchmarks.replay.books` for ``N`` expected messages, which also
checks the frames against the schemas) and the CPU seconds it spent serving since it started
listening, as one JSON line. Exits when stdin closes.

    python -m benchmarks.csms_process
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from benchmarks.replay import BenchCsms, books


async def serve() -> None:
    loop = asyncio.get_running_loop()
    async with BenchCsms() as csms:
        print(json.dumps({"url": csms.url}), flush=True)
        cpu0 = time.process_time()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cpu = time.process_time() - cpu0  # serving only: books() checks the frames
            answer = books(csms, int(line))
            answer["csms_cpu_seconds"] = round(cpu, 3)
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
