"""The generated configuration reference in docs/ must match the validator's schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.config import describe_ocpp_keys, describe_schema

ROOT = Path(__file__).resolve().parents[3]


def test_configuration_reference_is_current() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert describe_schema().strip() in text, "regenerate docs/configuration.md (see its header)"


def test_readme_quick_start_has_exactly_two_commands_demo_then_test() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()


def test_readme_ocpp_key_table_is_generated_from_the_key_specs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert describe_ocpp_keys() in readme, "regenerate the README's OCPP key table"


def test_readme_ocpp_table_shows_the_seeded_defaults() -> None:
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")
            for line in describe_ocpp_keys().splitlines()[2:]}
    assert rows["MeterValuesSampledData"][2] == "Energy.Active.Import.Register,Power.Active.Import"
    assert rows["ConnectionTimeOut"][3].startswith("1..3600")


def test_license_is_an_spdx_string() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
