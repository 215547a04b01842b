"""Releases of this agent for the update tests, and the service manager around them.

:func:`make_wheel` writes a real wheel (zip, ``*.dist-info`` with METADATA, WHEEL,
entry points and a RECORD of sha256 digests, PEP 427) of this checkout's ``agent``, ``hal`` and
``evsim`` packages with ``agent.__version__`` set to the given version, so each release tells
who it is in its BootNotification. ``broken`` makes a release that dies on import.

:data:`QUICK_INSTALLER` is the ``[update] installer`` most tests use: a real virtual
environment made without pip (``venv --without-pip``, tens of milliseconds) with the wheel
unpacked into its site-packages and the test environment's site-packages appended for the
dependencies (ocpp, websockets, pymodbus, ...). The release's own packages come first on the
path. One slow test runs the default installer (venv with pip, pip install) instead.

:class:`ReleaseService` does what the systemd unit does: run the guard (ExecStartPre), start
``releases/current/bin/python -m agent run`` and start it again whenever it exits
(Restart=always), until stopped; like systemd's KillMode=control-group, whatever the agent
started dies with it. ``kill()`` is a kill -9 of the running agent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import shlex
import signal
import site
import tarfile
import zipfile
from pathlib import Path

from agent.maintenance.package import build, verify
from agent.maintenance.releases import Releases
from evsim.site import SimSite

from .agent_process import stop_process

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "install" / "release-guard.sh"
DEPENDENCIES = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
_SOURCES = {"agent": ROOT / "agent", "hal": ROOT / "hal", "evsim": ROOT / "hardware-sim" / "evsim"}

QUICK_INSTALL_SCRIPT = """\
import os, sys, venv, zipfile, pathlib
dest = pathlib.Path(os.environ["EVSE_RELEASE_DIR"])
venv.EnvBuilder(with_pip=False, symlinks=True).create(dest)
site = next(dest.glob("lib/python*/site-packages"))
wheel = next(pathlib.Path(os.environ["EVSE_WHEELS"]).glob("evse_agent-*.whl"))
zipfile.ZipFile(wheel).extractall(site)
(site / "test-dependencies.pth").write_text(sys.argv[1] + "\\n")
launcher = dest / "bin" / "evse-agent"
launcher.write_text('#!/bin/sh\\nexec "$(dirname "$0")/python" -m agent "$@"\\n')
launcher.chmod(0o755)
"""


def quick_installer(workdir: Path) -> str:
    script = workdir / "quick_install.py"
    script.write_text(QUICK_INSTALL_SCRIPT)
    return f'"$EVSE_PYTHON" {shlex.quote(str(script))} {shlex.quote(DEPENDENCIES)}'


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(out: Path, version: str, broken: bool = False) -> Path:
    """The agent as ``evse_agent-VERSION-py3-none-any.whl`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"evse_agent-{version}-py3-none-any.whl"
    info = f"evse_agent-{version}.dist-info"
    files: dict[str, bytes] = {}
    for package, source in _SOURCES.items():
        for path in sorted(source.rglob("*.py")):
            files[f"{package}/{path.relative_to(source).as_posix()}"] = path.read_bytes()
    init = f'"""evse-agent {version} (a test release)."""\n\n__version__ = "{version}"\n'
    if broken:
        init += 'raise RuntimeError("this release is broken on purpose")\n'
    files["agent/__init__.py"] = init.encode()
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: evse-agent\n"
                                 f"Version: {version}\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: releases_kit\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = (
        b"[console_scripts]\nevse-agent = agent.cli:main\nevsim = evsim.cli:main\n\n"
        b"[gpiozero_pin_factories]\nevsim = evsim.pins:WorldPinFactory\n")
    record = [_record_line(name, data) for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def make_package(out: Path, version: str, broken: bool = False) -> Path:
    """A release package (agent.maintenance.package) of :func:`make_wheel`."""
    wheel = make_wheel(out / f"wheels-{version}", version, broken)
    package = out / f"evse-agent-{version}.tar.gz"
    build([wheel], package)
    return package


def corrupt(package: Path, out: Path) -> Path:
    """A copy of ``package`` with one byte of the wheel changed: the checksum no longer fits."""
    bad = out / f"corrupt-{package.name}"
    with tarfile.open(package, "r:gz") as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".whl"):
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            dst.addfile(member, io.BytesIO(data))
    return bad


async def install_first(releases: Releases, package: Path, installer: str) -> str:
    """What install.sh does on a new charger: one release, ``current`` pointing at it."""
    releases.root.mkdir(parents=True, exist_ok=True)
    name = f"{verify(package).version}-installed"
    await releases.install(package, name, installer)
    releases.switch(name)
    return name


def update_toml(releases: Path, installer: str, health_timeout: float = 20.0) -> str:
    return (f"[update]\nreleases = {str(releases)!r}\ninstaller = {installer!r}\n"
            f"health_timeout = {health_timeout}\ntransfer_timeout = 5\n")


class ReleaseService:
    """The unit's ExecStartPre (guard), ExecStart (current) and Restart=always."""

    def __init__(self, site: SimSite, releases: Path) -> None:
        self.site = site
        self.releases = releases
        self.config = site.write_agent_config()
        self.process: asyncio.subprocess.Process | None = None
        self.logs: list[Path] = []
        self.exits: list[int] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    @property
    def starts(self) -> int:
        return len(self.logs)

    async def _guard(self) -> None:
        guard = await asyncio.create_subprocess_exec("sh", str(GUARD), str(self.releases),
                                                     stdout=asyncio.subprocess.DEVNULL)
        await guard.wait()

    async def _start_once(self) -> asyncio.subprocess.Process:
        await self._guard()
        log_path = self.site.workdir / f"service-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(EVSIM_PIN_BUS=self.site.pin_bus, PYTHONUNBUFFERED="1")
        python = self.releases / "current" / "bin" / "python"
        with log_path.open("wb") as log:
            return await asyncio.create_subprocess_exec(
                str(python), "-m", "agent", "run", "--config", str(self.config),
                stdout=log, stderr=log, env=env, cwd=str(self.site.workdir),
                start_new_session=True)

    async def _supervise(self) -> None:
        while self._running:
            self.process = await self._start_once()
            self._started.set()
            self.exits.append(await self.process.wait())
            # KillMode=control-group: what the agent started (an installer) dies with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)  # RestartSec

    async def start(self) -> None:
        self._running = True
        self._task = asyncio.create_task(self._supervise())
        await self._started.wait()

    def kill_now(self) -> None:
        """SIGKILL of the running agent, synchronously (from a frame callback)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM (systemctl stop), SIGKILL after 15 s; no restart after it."""
        self._running = False
        while self._task is not None and not self._task.done():
            if self.process is not None:
                await stop_process(self.process)
            await asyncio.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in self.logs if path.exists())

