"""systemd/evse-agent.service: the directives the agent relies on, verified by systemd itself.

The unit is read with a small parser (configparser cannot keep repeated keys such as
DeviceAllow=). ``systemd-analyze`` runs when it is installed (Debian: ``apt install systemd``);
it does not need systemd to be running.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "systemd" / "evse-agent.service"
INSTALLED_BINARY = "/opt/evse-agent/releases/current/bin/evse-agent"
INSTALLED_GUARD = "/opt/evse-agent/bin/evse-agent-guard"
GUARD = ROOT / "install" / "release-guard.sh"
MAX_EXPOSURE = 2.5

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections → key → every value in file order (an empty assignment resets the list)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"directive outside a section: {line}"
        assert "=" in line and not line.endswith("\\"), f"not a one-line directive: {line}"
        key, value = (part.strip() for part in line.split("=", 1))
        values = section.setdefault(key, [])
        if value:
            values.append(value)
        else:
            values.clear()
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values and len(values) == 1, f"{key}= in [{section}]: {values}"
    return values[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "10s"),
        ("Restart", "always"),
        ("RestartSec", "2s"),
        ("TimeoutStopSec", "20s"),
        ("ExecStart", f"{INSTALLED_BINARY} run --config /etc/evse-agent/config.toml"),
        ("ExecStartPre", f"{INSTALLED_GUARD} /opt/evse-agent/releases"),
        ("ReadWritePaths", "/opt/evse-agent/releases"),
        ("User", "evse-agent"),
        ("Group", "evse-agent"),
        ("StateDirectory", "evse-agent"),
        ("ConfigurationDirectory", "evse-agent"),
        ("LogsDirectory", "evse-agent"),
        ("SyslogIdentifier", "evse-agent"),
        ("DevicePolicy", "closed"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0027"),
    ],
)
def test_service_directive(unit: Unit, key: str, value: str) -> None:
    assert one(unit, "Service", key) == value


def test_the_service_user_has_the_hardware_groups(unit: Unit) -> None:
    groups = " ".join(unit["Service"]["SupplementaryGroups"]).split()
    assert set(groups) == {"gpio", "spi", "dialout"}


def test_device_access_is_closed_except_gpio_spi_and_serial(unit: Unit) -> None:
    allowed = {tuple(v.split()) for v in unit["Service"]["DeviceAllow"]}
    assert allowed == {
        ("/dev/gpiochip0", "rw"),
        ("/dev/gpiochip4", "rw"),
        ("/dev/spidev0.0", "rw"),
        ("/dev/spidev0.1", "rw"),
        ("char-ttyAMA", "rw"),
        ("char-ttyS", "rw"),
        ("char-ttyUSB", "rw"),
        ("char-ttyACM", "rw"),
    }
    # PrivateDevices=yes would hide gpiochip, spidev and the serial ports.
    assert unit["Service"].get("PrivateDevices", ["no"]) == ["no"]


def test_no_capabilities(unit: Unit) -> None:
    assert "CapabilityBoundingSet" in unit["Service"]
    assert unit["Service"]["CapabilityBoundingSet"] == []


def test_starts_on_boot(unit: Unit) -> None:
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt install systemd)")
    return path


def existing_binary() -> str:
    """An executable that exists here, to stand in for the installed agent."""
    beside = Path(sys.executable).parent / "evse-agent"
    return str(beside) if beside.exists() else sys.executable


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing to a binary that exists (verify checks it)."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED_BINARY, existing_binary())
                    .replace(INSTALLED_GUARD, str(GUARD)))
    return copy


def test_systemd_analyze_verify_is_clean(unit_copy: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit_copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    about_us = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0, result.stderr
    assert about_us == []


def test_security_exposure_is_at_most_2_5(unit_copy: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit_copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if "offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"systemd-analyze security --offline is not supported: {result.stderr}")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
