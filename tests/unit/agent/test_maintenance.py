"""The release package's checks and the guard's trial protocol, on real files."""

from __future__ import annotations

import asyncio
import io
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import UpdateConfig
from agent.maintenance.firmware import FirmwareUpdater
from agent.maintenance.package import PackageError, build, verify
from agent.maintenance.releases import INSTALLED, Releases

ROOT = Path(__file__).resolve().parents[3]
GUARD = ROOT / "install" / "release-guard.sh"


def _wheel(tmp_path: Path, version: str = "0.2.0") -> Path:
    wheel = tmp_path / f"evse_agent-{version}-py3-none-any.whl"
    wheel.write_bytes(b"PK not really a zip, but bytes with a checksum")
    return wheel


def test_a_built_package_verifies(tmp_path: Path) -> None:
    out = tmp_path / "r.tar.gz"
    manifest = build([_wheel(tmp_path)], out)
    assert verify(out) == manifest and manifest.requirement == "evse-agent==0.2.0"


def _rewrite(src: Path, dst: Path, extra: tuple[str, bytes] | None = None,
             flip: bool = False) -> Path:
    with tarfile.open(src, "r:gz") as old, tarfile.open(dst, "w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            if flip and member.name.endswith(".whl"):
                data = bytes([data[0] ^ 1]) + data[1:]
            new.addfile(member, io.BytesIO(data))
        if extra is not None:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            new.addfile(info, io.BytesIO(extra[1]))
    return dst


@pytest.mark.parametrize(("change", "problem"), [
    ({"flip": True}, "sha256 does not match"),
    ({"extra": ("wheels/evil.whl", b"x")}, "not in the manifest"),
    ({"extra": ("../escape", b"x")}, "not a plain file"),
])
def test_an_altered_package_is_refused(tmp_path: Path, change: dict[str, object],
                                       problem: str) -> None:
    good = tmp_path / "r.tar.gz"
    build([_wheel(tmp_path)], good)
    bad = _rewrite(good, tmp_path / "bad.tar.gz", **change)  # type: ignore[arg-type]
    with pytest.raises(PackageError, match=problem):
        verify(bad)


def test_a_truncated_download_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "r.tar.gz"
    build([_wheel(tmp_path)], good)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(PackageError):
        verify(cut)


def _release(releases: Releases, name: str) -> None:
    (releases.root / name / "bin").mkdir(parents=True)
    (releases.root / name / INSTALLED).write_text("requirement=evse-agent\n")


def _guard(releases: Releases) -> str:
    done = subprocess.run(["sh", str(GUARD), str(releases.root)], capture_output=True,
                          text=True, timeout=10, check=True)
    return done.stdout


def test_the_guard_starts_a_trial_once_and_rolls_back_the_second_time(tmp_path: Path) -> None:
    releases = Releases(tmp_path / "releases")
    _release(releases, "old")
    _release(releases, "new")
    releases.switch("old")
    assert _guard(releases) == "", "no trial: nothing to do"
    releases.begin_trial("old", "new")
    releases.switch("new")
    assert "on trial" in _guard(releases)
    trial = releases.trial()
    assert trial is not None and trial.state == "booting" and releases.current() == "new"
    assert "back to old" in _guard(releases), "it died before committing"
    assert releases.current() == "old" and releases.trial() is None
    assert releases.report() == "InstallationFailed"


def test_an_unfinished_install_is_removed_at_start(tmp_path: Path) -> None:
    releases = Releases(tmp_path / "releases")
    _release(releases, "old")
    releases.switch("old")
    (releases.root / "new" / "bin").mkdir(parents=True)  # no .installed marker
    releases.clean_partial()
    assert releases.names() == ["old"] and not (releases.root / "new").exists()


async def _waiting_updater(tmp_path: Path, running: list[bool], holds: list[bool]
                           ) -> tuple[FirmwareUpdater, asyncio.Task[bool]]:
    config = UpdateConfig(releases=tmp_path, installer=None, health_timeout=1.0,
                          transfer_timeout=1.0, keep=1)

    async def no_hardware() -> None:
        return None

    updater = FirmwareUpdater(
        Releases(tmp_path), config, lambda status: None, lambda: running[0], lambda: None,
        no_hardware, lambda: datetime.now(UTC), sleep=lambda _: asyncio.sleep(0),
        hold=holds.append)
    task = asyncio.create_task(updater._until_idle())
    for _ in range(5):
        await asyncio.sleep(0)
    return updater, task


async def test_the_wait_for_transactions_holds_the_connectors_until_the_restart(
        tmp_path: Path) -> None:
    running, holds = [True], []
    _, task = await _waiting_updater(tmp_path, running, holds)
    assert holds == [True] and not task.done()
    running[0] = False
    assert await task is True
    assert holds == [True], "the hold stays until the process restarts"


async def test_an_abandoned_wait_clears_the_hold(tmp_path: Path) -> None:
    running, holds = [True], []
    _, task = await _waiting_updater(tmp_path, running, holds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert holds == [True, False]


async def test_no_transaction_no_hold(tmp_path: Path) -> None:
    holds: list[bool] = []
    _, task = await _waiting_updater(tmp_path, [False], holds)
    assert await task is False and holds == []
