"""The generated configuration reference in docs/ must match the validator's schema."""

from __future__ import annotations

from pathlib import Path

from agent.config import describe_schema

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
