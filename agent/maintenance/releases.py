"""The releases on the charger: one layout shared by install/install.sh, the update path and
the start-up guard (install/release-guard.sh)::

    PREFIX/releases/                 [update] releases; writable by the service
        0.1.0-20261204T120000/       a release: a virtual environment, complete once it
            .installed               holds this marker (written last by the installer)
        0.2.0-20261204T130000/
        current -> 0.2.0-...         the release the service runs (a relative symlink)
        trial                        a switched release not yet healthy (the guard's file)
        report                       a final FirmwareStatus still to be told to the CSMS
        job                          the update this release is working on
        signed                       requestId of the last SignedUpdateFirmware (absent
                                     after an unsigned UpdateFirmware)
        downloads/                   packages being or just downloaded

The unit runs ``PREFIX/releases/current/bin/evse-agent``; ``current`` is only ever replaced by
``rename(2)`` of a new link over it, so at every instant it names one complete release. A
release is built in place (a venv cannot be moved: its scripts name their interpreter by
absolute path) and counts only once its ``.installed`` marker exists; a directory without one
is what an interrupted install left, and the next start removes it. The small state files
are ``key=value`` lines, written to a temporary file and renamed, so a kill -9 leaves the old
or the new file, never half of one.

The trial protocol (docs/updates.md): before switching, the running release writes
``trial`` (``state=pending``, ``previous``, ``release``), then switches ``current`` and exits
for a restart. The guard, run by systemd before every start (ExecStartPre), turns ``pending``
into ``booting``; finding ``booting`` means the new release died or was killed before it
proved healthy, so it switches ``current`` back to ``previous`` and leaves
``report`` = InstallationFailed. A new release that passes the health check removes ``trial``
(the commit) and reports Installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.maintenance.package import PackageError, unpack

log = logging.getLogger(__name__)

CURRENT = "current"
TRIAL = "trial"
REPORT = "report"
JOB = "job"
SIGNED = "signed"
DOWNLOADS = "downloads"
INSTALLED = ".installed"
_STATE_FILES = (CURRENT, TRIAL, REPORT, JOB, SIGNED, DOWNLOADS)
INSTALL_TIMEOUT = 1800.0  # seconds: pip on a Pi 3 can take minutes


class InstallError(Exception):
    """The release could not be installed; the text says why."""


@dataclass(frozen=True)
class Trial:
    previous: str
    release: str
    state: str  # pending (not started yet) | booting (the guard started it)


def read_fields(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def write_fields(path: Path, fields: dict[str, str]) -> None:
    """Replace ``path`` atomically and durably with ``key=value`` lines."""
    tmp = path.with_name(f".{path.name}.new")
    with tmp.open("w") as out:
        out.write("".join(f"{k}={v}\n" for k, v in fields.items()))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Releases:
    def __init__(self, root: Path) -> None:
        self.root = root

    # --- what is there -------------------------------------------------------------------

    def current(self) -> str | None:
        try:
            return os.readlink(self.root / CURRENT).rstrip("/").rsplit("/", 1)[-1]
        except OSError:
            return None

    def path(self, name: str) -> Path:
        return self.root / name

    def names(self) -> list[str]:
        """Installed releases, oldest first (names start with the install time's order only
        within a version, so sort by the directory's modification time)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir()
                 if p.is_dir() and not p.is_symlink() and (p / INSTALLED).exists()]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def new_name(self, version: str, now: datetime) -> str:
        """``VERSION-UTCTIME``, the form install.sh uses too; unique in the directory."""
        base = name = f"{version}-{now.strftime('%Y%m%dT%H%M%S')}"
        number = 1
        while (self.root / name).exists():
            name, number = f"{base}-{number}", number + 1
        return name

    def download_path(self, name: str) -> Path:
        directory = self.root / DOWNLOADS
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{name}.tar.gz"

    # --- installing and switching --------------------------------------------------------

    async def install(self, archive: Path, name: str, installer: str | None) -> Path:
        """Verify and unpack ``archive``, install it as release ``name`` beside the others.
        Raises InstallError; nothing is left under ``name`` unless the install finished."""
        staging = self.root / f".{name}.staging"
        release = self.root / name
        if release.exists():
            raise InstallError(f"release {name} exists already")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            manifest = await asyncio.to_thread(unpack, archive, staging)
        except PackageError as error:
            raise InstallError(f"invalid package: {error}") from error
        env = dict(os.environ, EVSE_RELEASE_DIR=str(release), EVSE_WHEELS=str(staging / "wheels"),
                   EVSE_REQUIREMENT=manifest.requirement, EVSE_PYTHON=sys.executable)
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        commands = ([["/bin/sh", "-c", installer]] if installer else [
            [sys.executable, "-m", "venv", str(release)],
            [str(release / "bin" / "python"), "-m", "pip", "install", "--no-input", "--quiet",
             "--disable-pip-version-check", "--find-links", str(staging / "wheels"),
             manifest.requirement],
        ])
        try:
            for command in commands:
                await _run(command, env)
            if not (release / "bin" / "python").exists():
                raise InstallError(f"the installer made no {name}/bin/python")
            # Every file of the release on the disk before the marker says it is complete
            # (one sync(2), not an fsync per file: a venv has thousands).
            await asyncio.to_thread(os.sync)
            write_fields(release / INSTALLED, {"requirement": manifest.requirement})
        except BaseException:
            shutil.rmtree(release, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return release

    def switch(self, name: str) -> None:
        """Point ``current`` at release ``name`` in one rename."""
        if not (self.root / name / INSTALLED).exists():
            raise InstallError(f"release {name} is not installed")
        link = self.root / f".{CURRENT}.new"
        link.unlink(missing_ok=True)
        os.symlink(name, link)
        os.replace(link, self.root / CURRENT)
        _sync_dir(self.root)

    def clean_partial(self) -> None:
        """What an interrupted download or install left behind."""
        if not self.root.is_dir():
            return
        current = self.current()
        for path in self.root.iterdir():
            if path.name.startswith(".") and path.name.endswith(".staging"):
                shutil.rmtree(path, ignore_errors=True)
            elif (path.is_dir() and not path.is_symlink() and path.name not in _STATE_FILES
                  and path.name != current and not (path / INSTALLED).exists()):
                log.warning("update: removing %s, an install that did not finish", path.name)
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.root / DOWNLOADS, ignore_errors=True)

    def prune(self, keep: int) -> None:
        """Remove the oldest releases beyond ``keep``, never the current one."""
        current = self.current()
        names = [n for n in self.names() if n != current]
        for name in names[:max(0, len(names) - (keep - 1))]:
            log.info("update: removing old release %s", name)
            shutil.rmtree(self.root / name, ignore_errors=True)

    # --- the state files -----------------------------------------------------------------

    def trial(self) -> Trial | None:
        fields = read_fields(self.root / TRIAL)
        if not fields or not fields.get("release"):
            return None
        return Trial(fields.get("previous", ""), fields["release"], fields.get("state", ""))

    def begin_trial(self, previous: str, release: str) -> None:
        write_fields(self.root / TRIAL,
                     {"previous": previous, "release": release, "state": "pending"})

    def end_trial(self) -> None:
        (self.root / TRIAL).unlink(missing_ok=True)
        _sync_dir(self.root)

    def report(self) -> str | None:
        fields = read_fields(self.root / REPORT)
        return fields.get("status") if fields else None

    def set_report(self, status: str) -> None:
        write_fields(self.root / REPORT, {"status": status})

    def clear_report(self, status: str) -> None:
        if self.report() == status:
            (self.root / REPORT).unlink(missing_ok=True)

    def job(self) -> dict[str, str] | None:
        return read_fields(self.root / JOB)

    def set_job(self, phase: str, release: str = "") -> None:
        write_fields(self.root / JOB, {"phase": phase, "release": release})

    def clear_job(self) -> None:
        (self.root / JOB).unlink(missing_ok=True)

    def request_id(self) -> int | None:
        """The requestId of the update in progress or last reported, when it was a
        SignedUpdateFirmware (its statuses are SignedFirmwareStatusNotifications)."""
        fields = read_fields(self.root / SIGNED) or {}
        try:
            return int(fields["request_id"])
        except (KeyError, ValueError):
            return None

    def set_request_id(self, request_id: int | None) -> None:
        if request_id is None:
            (self.root / SIGNED).unlink(missing_ok=True)
        else:
            write_fields(self.root / SIGNED, {"request_id": str(request_id)})


async def _run(command: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), INSTALL_TIMEOUT)
    except TimeoutError as error:
        process.kill()
        await process.wait()
        raise InstallError(f"{command[0]} took longer than {INSTALL_TIMEOUT:.0f} s") from error
    except asyncio.CancelledError:
        process.kill()
        raise
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-5:]
        raise InstallError(f"{' '.join(command[:3])} failed ({process.returncode}): "
                           + " | ".join(tail))
