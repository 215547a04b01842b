"""The whole agent with the dashboard on: the simulated world, the strict CSMS, the API with a
control and a read token, and the bench relay (``api.bench_url``). Shared by the route tests
and the browser test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from evsim.site import SimSite, SiteOptions, free_port

from ..conftest import RunningAgent

CONTROL = "dash-control-token-0123456789"
READ = "dash-read-token-0123456789ab"
EVSE = "DE*EVA*E0001*1"
HOOK_SECRET = "hook-query-secret-42"


@pytest.fixture
def site_options() -> SiteOptions:
    port = free_port()
    return SiteOptions(sample_interval=1, extra_authorization="authorize_timeout = 2",
                       extra_toml=f"""
[api]
listen = "127.0.0.1:{port}"
webhook_url = "http://127.0.0.1:9/hook?key={HOOK_SECRET}"
[[api.token]]
scope = "control"
secret = "{CONTROL}"
[[api.token]]
scope = "read"
secret = "{READ}"
""")


def dashboard_config(site: SimSite, bench: bool = True) -> str:
    text = site.agent_config().replace("[[connector]]\nid = 1\n",
                                       f'[[connector]]\nid = 1\nevse_id = "{EVSE}"\n')
    if bench:
        text = text.replace("[api]\n", f'[api]\nbench_url = "{site.bench_url}"\n')
    return text


class DashboardAgent(RunningAgent):
    def __init__(self, site: SimSite, bench: bool = True) -> None:
        from agent.app import Agent
        from agent.config import parse_config
        Agent.__init__(self, parse_config(dashboard_config(site, bench), "site"),
                       drain_seconds=5.0)

    @property
    def base(self) -> str:
        assert self.config.api is not None
        return f"http://127.0.0.1:{self.config.api.port}"


@pytest.fixture
async def agent(site: SimSite) -> AsyncIterator[DashboardAgent]:
    running = DashboardAgent(site)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
