"""install/install.sh into a temporary root: venv, config, unit; upgrade, uninstall, purge.

``--root`` keeps the host untouched (no user, no systemctl), so this runs in CI. The agent is
installed with ``--no-deps``: ``check-config`` needs only the standard library, and the
dependencies would make the test slow. Building the agent still fetches its build backend
(setuptools, wheel) through pip's cache or the package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent import __version__
from agent.maintenance.releases import Releases

ROOT = Path(__file__).resolve().parents[3]
INSTALLER = ROOT / "install" / "install.sh"
EXAMPLE = ROOT / "examples" / "raspberry-pi.toml"
PREFIX = "/opt/evse-test"
OFFLINE = ("Failed to establish a new connection", "Temporary failure in name resolution",
           "Network is unreachable", "No matching distribution found for setuptools")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bash") is None, reason="the installer needs bash"),
]


@dataclass
class Root:
    """A directory the installer treats as /."""

    path: Path

    @property
    def releases(self) -> Path:
        return self.path / PREFIX.lstrip("/") / "releases"

    @property
    def venv(self) -> Path:
        """The release ``current`` points at."""
        return self.releases / "current"

    @property
    def config(self) -> Path:
        return self.path / "etc" / "evse-agent" / "config.toml"

    @property
    def unit(self) -> Path:
        return self.path / "etc" / "systemd" / "system" / "evse-agent.service"

    @property
    def state(self) -> Path:
        return self.path / "var" / "lib" / "evse-agent"

    def install(self, *options: str, start: bool = False) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        result = subprocess.run(
            ["bash", str(INSTALLER), "--root", str(self.path), "--prefix", PREFIX,
             *([] if start else ["--no-start"]), "--python", sys.executable,
             "--pip-args", "--no-deps", *options],
            capture_output=True, text=True, env=env, timeout=110, check=False,
        )
        if result.returncode != 0 and any(s in result.stderr for s in OFFLINE):
            pytest.skip("pip cannot reach the package index for the build backend")
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Root, str]:
    root = Root(tmp_path_factory.mktemp("root"))
    return root, root.install().stdout


def test_the_venv_holds_the_agent(installed: tuple[Root, str]) -> None:
    root, _ = installed
    assert (root.venv / "bin" / "evse-agent").exists()


def test_the_installed_package_ships_the_dashboard(installed: tuple[Root, str]) -> None:
    root, _ = installed  # package data (pyproject.toml), not only the source tree
    (folder,) = root.venv.glob("lib/python3*/site-packages/agent/api/dashboard")
    assert sorted(p.name for p in folder.iterdir()) == ["app.js", "index.html", "style.css"]


def test_the_command_is_on_the_path_of_sudo(installed: tuple[Root, str]) -> None:
    root, _ = installed
    link = root.path / "usr" / "local" / "bin" / "evse-agent"
    assert link.is_symlink()
    # the path on the target
    assert os.readlink(link) == f"{PREFIX}/releases/current/bin/evse-agent"


def test_the_release_layout_is_the_one_updates_use(installed: tuple[Root, str]) -> None:
    root, output = installed
    releases = Releases(root.releases)
    (name,) = releases.names()
    assert releases.current() == name and name.startswith(f"{__version__}-")
    assert (root.path / PREFIX.lstrip("/") / "bin" / "evse-agent-guard").exists()
    assert "would run: chown -R evse-agent:evse-agent" in output


def test_the_starter_config_is_the_raspberry_pi_example(installed: tuple[Root, str]) -> None:
    root, _ = installed
    assert root.config.read_text() == EXAMPLE.read_text()
    assert root.config.stat().st_mode & 0o777 == 0o640  # it holds the CSMS password


def check_config(root: Root) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root.venv / "bin" / "evse-agent"), "check-config", str(root.config)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_starter_config_fails_check_config_naming_the_placeholders(
    installed: tuple[Root, str],
) -> None:
    root, output = installed
    assert f"{root.config}: OK" not in output
    result = check_config(root)
    assert result.returncode == 2
    assert f"{root.config}: csms.url: 'wss://csms.example.com/ocpp' is still the example; " \
        "set your CSMS's URL" in result.stderr
    assert f"{root.config}: csms.password: is still the starter placeholder" in result.stderr


def test_the_service_is_enabled_but_not_started_until_check_config_passes(
    tmp_path: Path,
) -> None:
    root = Root(tmp_path)
    first = root.install(start=True)
    assert "would run: systemctl enable evse-agent" in first.stdout
    assert "would run: systemctl restart" not in first.stdout
    assert "would run: systemctl start" not in first.stdout
    assert "not starting the service until the configuration is valid" in first.stdout
    assert "csms.url" in first.stderr and "csms.password" in first.stderr

    text = root.config.read_text()
    root.config.write_text(text.replace("wss://csms.example.com/ocpp", "wss://acme.test/ocpp")
                           .replace("REPLACE-with-the-key-from-your-CSMS", "s3cret-key-0001"))
    assert check_config(root).returncode == 0
    again = root.install(start=True)
    assert f"{root.config}: OK" in again.stdout
    assert "would run: systemctl restart evse-agent" in again.stdout


def test_the_unit_runs_the_agent_from_the_prefix(installed: tuple[Root, str]) -> None:
    root, _ = installed
    text = root.unit.read_text()
    run = f"{PREFIX}/releases/current/bin/evse-agent run --config /etc/evse-agent/config.toml"
    assert f"ExecStart={run}\n" in text
    assert f"ExecStartPre={PREFIX}/bin/evse-agent-guard {PREFIX}/releases\n" in text
    assert f"ReadWritePaths={PREFIX}/releases\n" in text
    assert "/opt/evse-agent" not in text


def test_the_host_is_left_alone(installed: tuple[Root, str]) -> None:
    _, output = installed
    assert "would run: useradd --system" in output
    assert "would run: systemctl enable evse-agent" in output
    assert "would run: systemctl restart" not in output  # --no-start


def test_upgrade_keeps_config_and_state_uninstall_keeps_them_purge_removes_them(
    tmp_path: Path,
) -> None:
    root = Root(tmp_path)
    root.install()
    root.config.write_text(root.config.read_text().replace('"CP-0001"', '"CP-4711"'))
    (root.state / "agent.db").write_bytes(b"journal")

    first = Releases(root.releases).current()
    upgrade = root.install()
    assert "keeping the existing configuration" in upgrade.stdout
    releases = Releases(root.releases)
    assert releases.current() != first and len(releases.names()) == 2, "side by side"
    assert '"CP-4711"' in root.config.read_text()
    assert (root.state / "agent.db").read_bytes() == b"journal"
    assert (root.venv / "bin" / "evse-agent").exists()

    root.install("--uninstall")
    assert not root.venv.exists()
    assert not (root.path / "usr" / "local" / "bin" / "evse-agent").is_symlink()
    assert not root.unit.exists()
    assert '"CP-4711"' in root.config.read_text()
    assert (root.state / "agent.db").exists()

    root.install("--purge")
    assert not root.config.exists()
    assert not root.state.exists()
    assert not (root.path / PREFIX.lstrip("/")).exists()


def test_the_installer_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian: apt install shellcheck)")
    result = subprocess.run([shellcheck, str(INSTALLER)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout
