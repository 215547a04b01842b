"""A real MQTT broker for the tests: ``mosquitto -c <conf>`` on a free loopback port.

The broker is the test's own child process: stopping it signals that process only (never a
broker by name). When mosquitto is not installed, :func:`ensure_mosquitto` installs it from
the distribution's packages (``apt-get``, as root), as ``.ci/run`` does on a fresh machine;
only where that is impossible the tests are skipped, saying why.

:class:`Watcher` is a subscriber on the broker (aiomqtt): it keeps the last payload of every
topic under a filter and the list of every message, and waits for conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from evsim.site import free_port
from tests.pki import TestCa


def ensure_mosquitto() -> str:
    """The mosquitto binary; installed first when missing (needs root and the package
    index); the test is skipped with the reason when neither works."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                         "mosquitto"]):
            subprocess.run(command, env=env, check=False, capture_output=True, timeout=600)
        found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if found:
            return found
    pytest.skip("mosquitto is not installed and cannot be installed here (apt-get as root)")


@dataclass
class Mosquitto:
    """One broker; ``restart()`` keeps the port. No persistence: a restarted broker has
    forgotten every retained message, so what a client finds afterwards was republished."""

    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)  # user -> password; empty: anonymous
    ca: TestCa | None = None  # TLS (mqtts) with a certificate for 127.0.0.1 from this CA
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    def _config(self) -> Path:
        # As root, mosquitto would drop to its own user and could not read our files (the
        # password file is 0600): it keeps the test's user (no effect for a non-root one).
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "user root",
                 "log_dest stderr", "log_type all"]
        if self.ca is not None:
            cert, key = self.ca.server_files(self.workdir / "tls")
            (self.workdir / "tls" / "ca.pem").write_text(self.ca.root_pem)
            lines += [f"cafile {self.workdir / 'tls' / 'ca.pem'}", f"certfile {cert}",
                      f"keyfile {key}"]
        if self.users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            passwords.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b",
                                str(passwords), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    async def start(self) -> None:
        binary = ensure_mosquitto()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                binary, "-c", str(self._config()), stdout=log, stderr=log)
        self.starts += 1
        await self._until_listening()

    async def _until_listening(self, within: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            assert self.process is not None and self.process.returncode is None, (
                f"mosquitto exited: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return
            assert loop.time() < deadline, f"mosquitto never listened: {self.log()}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM to this broker's own process (SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Watcher:
    """A subscriber to ``filter`` on the broker: ``retained``-or-not, the last payload of
    each topic (``last``) and every message in order (``messages``)."""

    def __init__(self, port: int, topic_filter: str, **login: Any) -> None:
        self.port, self.filter, self.login = port, topic_filter, login
        self.last: dict[str, str] = {}
        self.messages: list[tuple[str, str, bool]] = []  # topic, payload, retained
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, **self.login) as client:
            await client.subscribe(self.filter, qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload
                text = payload.decode() if isinstance(payload, bytes | bytearray) else str(
                    payload)
                self.last[message.topic.value] = text
                self.messages.append((message.topic.value, text, bool(message.retain)))

    async def until(self, wanted: Callable[[Watcher], bool], what: str,
                    within: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not wanted(self):
            assert self._task is not None
            if self._task.done():
                self._task.result()  # the subscriber failed: show why
            assert loop.time() < deadline, f"{what} within {within} s; last: {self.last}"
            await asyncio.sleep(0.05)

    async def until_value(self, topic: str, value: str, within: float = 15.0) -> None:
        await self.until(lambda w: w.last.get(topic) == value, f"{topic} never {value!r}",
                         within)

    def json_of(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for name, payload, _ in self.messages if name == topic]


async def publish(port: int, topic: str, payload: str | bytes, **login: Any) -> None:
    async with aiomqtt.Client("127.0.0.1", port, **login) as client:
        await client.publish(topic, payload, qos=1)


@contextlib.asynccontextmanager
async def running_broker(workdir: Path, **options: Any) -> AsyncIterator[Mosquitto]:
    broker = Mosquitto(workdir, **options)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
