"""The import contracts in pyproject.toml cover the modules they are about.

import-linter checks the contracts (dev.py runs it before the tests); this checks that a new
module of the core cannot slip past the contract that keeps feature modules from importing
the coordinator, because the contract lists modules by name.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COORDINATOR = "agent.core.station"


def contract(name: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [found] = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name]
    return found


def test_every_core_module_but_the_coordinator_is_kept_from_importing_it() -> None:
    found = contract("The core's feature modules never import the coordinator")
    modules = {f"agent.core.{p.stem}" for p in (ROOT / "agent" / "core").glob("*.py")
               if p.stem != "__init__"}
    assert found["forbidden_modules"] == [COORDINATOR]
    assert set(found["source_modules"]) == modules - {COORDINATOR}  # type: ignore[arg-type]


def test_the_core_may_not_reach_an_adapter_even_indirectly() -> None:
    found = contract("Nothing in the core imports an OCPP adapter, even indirectly")
    assert found["source_modules"] == ["agent.core"]
    assert found["forbidden_modules"] == ["agent.csms"]
    assert not found.get("allow_indirect_imports", False)
