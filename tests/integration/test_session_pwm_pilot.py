"""A whole charging session with the Pi driving the control pilot itself: the agent's real
PwmPilot writes the world's sysfs PWM tree (``[connector.pilot] driver = "pwm"``, its
``pwm_root``) and reads the pilot wire through gpiozero's MCP3008 on the evsim pin factory;
the world's EV draws what the duty offers. OCPP 1.6J to a strict CSMS."""

from __future__ import annotations

import asyncio

import pytest

from evsim.site import SimSite, SiteOptions

from .conftest import Bench, RunningAgent, wait_status

CARD = "00A1B2C3"
MAX_CURRENT = 16  # the site's connector max_current: what the agent offers
NO_OFFER = 1.0  # 100 % duty: steady +12 V, no charging (state x1)


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, pilot="pwm", max_current=MAX_CURRENT)


async def test_the_ev_charges_at_the_duty_the_agent_writes_and_unplugging_opens_the_contactor(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms
    await wait_status(site, "Available")
    idle = await bench.until_connector(lambda s: s["pwm"]["enabled"], what="PWM never on")
    assert (idle["pwm"]["duty"], idle["pilot"]) == (NO_OFFER, "A")
    assert idle["contactor"]["relay_closed"] is False

    await bench("plug", 1)
    await wait_status(site, "Preparing")  # the agent read B on its ADC
    await bench("present_card", CARD)
    await csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await wait_status(site, "Charging")
    charging = await bench.until_connector(
        lambda s: s["meter"]["power_w"] > 0, what="no current flows")
    assert charging["contactor"]["relay_closed"] is True
    assert charging["offered_current_a"] == pytest.approx(MAX_CURRENT, abs=0.001)
    assert charging["meter"]["current_a"] == pytest.approx([MAX_CURRENT] * 3, abs=0.001)
    await csms.wait_for_action("MeterValues")

    await bench("unplug", 1)
    await bench.until_relay(False)  # the agent read A on its ADC and opened the contactor
    await csms.wait_for_action("StopTransaction")
    await wait_status(site, "Available")
    (tx,) = csms.transactions.values()
    assert (tx.id_tag, tx.reason) == (CARD, "EVDisconnected")
    assert tx.meter_stop is not None and tx.meter_stop > tx.meter_start
    await bench.until_connector(lambda s: s["pwm"]["duty"] == NO_OFFER, what="offer not withdrawn")


async def test_an_ev_without_its_diode_never_gets_the_contactor_closed(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await wait_status(site, "Available")
    await bench("fault", 1, "diode_failure", True)
    await bench("plug", 1)
    await bench("present_card", CARD)  # the offer starts the PWM: its low plateau fails
    await site.csms.wait_for(lambda: "EVCommunicationError" in [
        error for cid, _, error in site.csms.statuses if cid == 1])
    await bench("ev_state", 1, "C")
    await asyncio.sleep(1.0)
    assert await bench.relay_closed() is False
