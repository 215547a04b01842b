"""Security events raised by inputs other than the TLS link, delivered to the strict CSMS:
TamperDetectionActivated from the enclosure's tamper switch (a GPIO edge through the world's
pin bus), InvalidMessages from frames the charger refused, rate-limited.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from evsim.site import SimSite, SiteOptions
from tests.integration.conftest import Bench, RunningAgent

from .conformance.helpers import booted

pytestmark = pytest.mark.slow


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(tamper=True)


def security_log(site: SimSite) -> list[dict[str, object]]:
    path = site.workdir / "state" / "security-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kinds(site: SimSite) -> list[str]:
    return [kind for kind, _ in site.csms.security_events]


async def test_opening_the_enclosure_sends_tamper_detection_activated(
        site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    await site.csms.wait_for(lambda: "StartupOfTheDevice" in kinds(site))
    assert "TamperDetectionActivated" not in kinds(site)

    await bench("fault", 0, "tamper", True)
    await site.csms.wait_for(lambda: "TamperDetectionActivated" in kinds(site))
    await bench("fault", 0, "tamper", False)  # closing it again is no event
    await bench("fault", 0, "tamper", True)
    await site.csms.wait_for(lambda: kinds(site).count("TamperDetectionActivated") == 2)
    (first, _) = [r for r in security_log(site) if r["type"] == "TamperDetectionActivated"]
    assert first["critical"] is True and first["info"] == "tamper switch: enclosure opened"


async def test_an_enclosure_open_at_start_is_reported_once_registered(
        site: SimSite, bench: Bench, start_agent: Any) -> None:
    await bench("fault", 0, "tamper", True)
    await start_agent()
    await site.csms.wait_for(lambda: "TamperDetectionActivated" in kinds(site))
    assert kinds(site).count("TamperDetectionActivated") == 1
    boot = site.csms.calls("BootNotification")[0]
    event = next(f for f in site.csms.calls("SecurityEventNotification")
                 if f.payload["type"] == "TamperDetectionActivated")
    assert event.at > boot.at  # journaled, sent after registration


async def test_invalid_frames_send_one_rate_limited_invalid_messages_event(
        site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    for n in range(5):
        await site.csms.send_raw('{oops')
        await site.csms.send_raw(f'[2, "bad{n}", "Frobnicate", {{}}]')
    await site.csms.send_raw('[2, "ok1", "Heartbeat", {}]')  # NotSupported: a valid message
    await site.csms.wait_for(lambda: len(site.csms.call_errors()) == 11)
    await site.csms.wait_for(lambda: "InvalidMessages" in kinds(site))
    # Events are delivered in order: once one raised after the flood is there, no second
    # InvalidMessages can still be on its way.
    await bench("fault", 0, "tamper", True)
    await site.csms.wait_for(lambda: "TamperDetectionActivated" in kinds(site))
    invalid = [info for kind, info in site.csms.security_events if kind == "InvalidMessages"]
    assert invalid == ["FormationViolation answered to a frame"]
