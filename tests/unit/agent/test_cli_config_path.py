"""Which configuration the command line reads, and where a relative state_dir points."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import cli
from agent.config import load_config
from agent.frame_log import EVENT, FrameRecord, FrameStore

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "examples" / "sim.toml"  # state_dir = "./state"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config at a stand-in for /etc/evse-agent/config.toml; the caller works elsewhere."""
    etc = tmp_path / "etc" / "evse-agent"
    etc.mkdir(parents=True)
    config = etc / "config.toml"
    config.write_text(SIM.read_text())
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(config))
    monkeypatch.delenv(cli.CONFIG_ENV, raising=False)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return config


def test_a_relative_state_dir_is_relative_to_the_files_directory(installed: Path) -> None:
    assert Path.cwd() != installed.parent
    assert load_config(installed).charger.state_dir == installed.parent / "state"
    assert load_config(os.path.relpath(installed)).charger.state_dir.resolve() \
        == (installed.parent / "state").resolve()


def test_an_absolute_state_dir_is_kept(installed: Path, tmp_path: Path) -> None:
    text = installed.read_text().replace('"./state"', json.dumps(str(tmp_path / "abs")))
    installed.write_text(text)
    assert load_config(installed).charger.state_dir == tmp_path / "abs"


def test_check_config_falls_back_to_the_installed_config(
        installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config"]) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith(f"{installed}: OK")


def test_the_environment_wins_over_the_installed_config(
        installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.toml"
    other.write_text(SIM.read_text())
    monkeypatch.setenv(cli.CONFIG_ENV, str(other))
    assert cli.main(["check-config"]) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith(f"{other}: OK")


def test_without_any_config_the_message_names_all_three_places(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv(cli.CONFIG_ENV, raising=False)
    assert cli.main(["check-config"]) == cli.EXIT_USAGE
    assert cli.main(["log"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert cli.CONFIG_ENV in err and "absent.toml does not exist" in err


def test_log_without_options_finds_the_installed_agents_log_from_anywhere(
        installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = FrameRecord(datetime.now(UTC), EVENT, EVENT, text="link up")
    FrameStore(installed.parent / "state").append([event.to_json()])
    assert cli.main(["log"]) == cli.EXIT_OK
    assert "link up" in capsys.readouterr().out
    assert cli.main(["log", "--config", os.path.relpath(installed)]) == cli.EXIT_OK
    assert "link up" in capsys.readouterr().out

