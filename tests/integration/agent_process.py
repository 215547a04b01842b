"""The agent as a child process on a simulated site, and the ``evse-agent`` commands beside it.

As in test_durability: the world and the CSMS live in the test and outlive the agent, so a
``kill -9`` cuts the charger's software only; the EV stays plugged and the meter keeps its count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from evsim.site import SimSite

EVSE_AGENT = str(Path(sys.executable).with_name("evse-agent"))  # the console script
MODULE = (sys.executable, "-m", "agent")


async def stop_process(process: asyncio.subprocess.Process, within: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``within`` seconds; nothing when it has ended."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()


class AgentProcess:
    """``evse-agent run --config FILE`` as a child; each start logs to its own file."""

    def __init__(self, site: SimSite, command: Sequence[str] = MODULE) -> None:
        self.site = site
        self.command = tuple(command)
        self.config = site.write_agent_config()
        self.process: asyncio.subprocess.Process | None = None
        self.logs: list[Path] = []

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, EVSIM_PIN_BUS=self.site.pin_bus, PYTHONUNBUFFERED="1")

    async def start(self) -> None:
        log_path = self.site.workdir / f"agent-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        with log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, "run", "--config", str(self.config),
                stdout=log, stderr=log, env=self.env,
            )

    def kill_now(self) -> None:
        """SIGKILL, synchronously (from a frame callback); reap it with :meth:`kill`."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()

    async def kill(self) -> None:
        """kill -9: no shutdown, no last words."""
        self.kill_now()
        assert self.process is not None
        await self.process.wait()

    async def terminate(self, within: float) -> int:
        """SIGTERM (systemctl stop); the exit status. Raises TimeoutError after ``within``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> None:
        """Clean up whatever runs: SIGTERM, then SIGKILL after 15 s."""
        if self.process is not None:
            await stop_process(self.process)

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run ``evse-agent ARGS`` without blocking the loop (the CSMS and world run on it)."""
        process = await asyncio.create_subprocess_exec(
            EVSE_AGENT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env)
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    def output(self) -> str:
        """Everything every run wrote to stdout and stderr."""
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in self.logs if path.exists()
        )
