"""The rig a bench scenario runs on: the simulated site (always) or a real bench (when
``EVSE_BENCH_CONFIG`` names a bench file; docs/bench.md).

Scenarios talk only to the bench control API and to the CSMS, so the same test drives the
simulator in CI and real hardware on a bench. The ``bench``-marked variant is skipped unless
``EVSE_BENCH_CONFIG`` is set; ``pytest -m bench`` runs only that one.

Bench file (TOML; paths relative to it)::

    agent_config = "agent.toml"          # the charger's agent config: real pins and ports
    url = "http://10.0.0.2:8400"         # `evsim bench serve --backend module:Class` on the bench
    connector = 1                        # the connector wired to the bench
    accepted_card = "04A2B3C4D5E680"     # idTags of two cards the bench can present, as the
    unknown_card = "0A1B2C3D"            # agent reads them; the test CSMS rejects the second
    step_timeout = 30                    # seconds one step may take (real EVs and relays)

The agent runs in the test process with its real drivers; its csms.url and state_dir are
replaced by the test's CSMS on loopback and a fresh temporary directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.config import Config, load_config, parse_config
from evsim.csms import Csms
from evsim.site import SimSite, SiteOptions
from tests.integration.conftest import Bench

BENCH_ENV = "EVSE_BENCH_CONFIG"


@dataclass
class Rig:
    """What a scenario drives: the bench API, the CSMS, and the agent's configuration."""

    kind: str  # "sim" or "bench"
    bench: Bench
    csms: Csms
    config: Config
    connector: int = 1
    accepted_card: str = "00A1B2C3"
    unknown_card: str = "0BADCAFE"
    step_timeout: float = 10.0


def load_bench_file(path: Path, csms: Csms, state_dir: Path) -> Rig:
    """The rig a bench file describes, with the agent pointed at ``csms`` and ``state_dir``."""
    raw: dict[str, Any] = tomllib.loads(path.read_text())
    config = load_config(path.parent / raw["agent_config"])
    config = dataclasses.replace(
        config,
        csms=dataclasses.replace(config.csms, url=csms.url, password=None),
        charger=dataclasses.replace(config.charger, state_dir=state_dir),
    )
    return Rig("bench", Bench(raw["url"]), csms, config, int(raw.get("connector", 1)),
               str(raw["accepted_card"]), str(raw["unknown_card"]),
               float(raw.get("step_timeout", 30.0)))


@pytest.fixture(params=["sim", pytest.param("bench", marks=pytest.mark.bench)])
async def rig(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    if request.param == "sim":
        async with SimSite(tmp_path, SiteOptions(sample_interval=1)) as site:
            monkeypatch.setenv("EVSIM_PIN_BUS", site.pin_bus)
            config = parse_config(site.agent_config(), "site")
            yield Rig("sim", Bench(site.bench_url), site.csms, config)
        return
    bench_file = os.environ.get(BENCH_ENV)
    if not bench_file:
        pytest.skip(f"needs {BENCH_ENV}=bench.toml and a bench (docs/bench.md)")
    async with Csms() as csms:
        yield load_bench_file(Path(bench_file), csms, tmp_path / "state")


@pytest.fixture
async def charger(rig: Rig) -> AsyncIterator[Agent]:
    """The agent on the rig, started with the EV unplugged; the EV is unplugged again after."""
    await rig.bench("unplug", rig.connector)
    agent = Agent(rig.config, drain_seconds=5.0)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
        await rig.bench("unplug", rig.connector)
    assert rig.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"
