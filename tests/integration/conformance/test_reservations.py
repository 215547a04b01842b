"""OCTT Reservation cases: TC_046_1, TC_046_2, TC_047, TC_048_1..4, TC_049, TC_050_2,
TC_050_4-like, TC_051, TC_052, TC_053 (../shared/reference/ocpp16-conformance.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call

from evsim.site import SimSite, SiteOptions
from tests.integration.agent_process import AgentProcess
from tests.integration.conftest import Bench, RunningAgent

from .helpers import (
    VALID,
    VALID_2,
    booted,
    change,
    charging,
    present_again,
    status,
    statuses_since,
)

GROUP = "FLEET7"


def expiry(seconds: float = 3600) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


async def reserve(site: SimSite, connector_id: int = 1, id_tag: str = VALID,
                  reservation_id: int = 7, seconds: float = 3600,
                  parent: str | None = None) -> str:
    result = await site.csms.call(call.ReserveNow(
        connector_id=connector_id, expiry_date=expiry(seconds), id_tag=id_tag,
        reservation_id=reservation_id, parent_id_tag=parent))
    return str(result.status)


async def test_tc_046_1_reserve_a_connector_local_start(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site) == "Accepted"
    await status(site, "Reserved")
    await bench("present_card", VALID_2)  # another card must not start anything
    await asyncio.sleep(0.5)
    assert not site.csms.calls("Authorize") and site.csms.last_status(1) == "Reserved"
    await present_again(bench, VALID)
    await status(site, "Preparing")
    await bench("plug", 1)
    start = await site.csms.wait_for_action("StartTransaction")
    assert (start.payload["idTag"], start.payload.get("reservationId")) == (VALID, 7)
    await bench("ev_state", 1, "C")
    await status(site, "Charging")


async def test_tc_046_2_reserve_a_connector_remote_start(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site) == "Accepted"
    await status(site, "Reserved")
    await bench("plug", 1)
    await asyncio.sleep(0.3)
    assert site.csms.last_status(1) == "Reserved"  # no Preparing while reserved
    other = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID_2, connector_id=1))
    assert other.status == "Rejected", "a remote start for another tag on a reserved connector"
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=1))
    assert result.status == "Accepted"
    await status(site, "Preparing")
    start = await site.csms.wait_for_action("StartTransaction")
    assert (start.payload["idTag"], start.payload.get("reservationId")) == (VALID, 7)
    await bench("ev_state", 1, "C")
    await status(site, "Charging")


async def test_tc_047_a_reservation_expires(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site, seconds=2) == "Accepted"
    await status(site, "Reserved")
    await status(site, "Available", within=6)
    transaction_id = await charging(site, bench, VALID_2)  # another tag may charge now
    assert site.csms.transactions[transaction_id].id_tag == VALID_2
    assert "reservationId" not in site.csms.calls("StartTransaction")[-1].payload


async def test_tc_048_1_reserve_a_faulted_connector(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("fault", 1, "evse_board_offline", True)
    await status(site, "Faulted")
    assert await reserve(site) == "Faulted"


async def test_tc_048_2_reserve_an_occupied_connector(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    assert await reserve(site) == "Occupied"
    await charging_after_plug(site, bench)
    assert await reserve(site, reservation_id=8) == "Occupied"


async def plug_and_charge(site: SimSite, bench: Bench) -> None:
    """After the reserved card was accepted: plug in, the EV asks for power."""
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await status(site, "Charging")


async def charging_after_plug(site: SimSite, bench: Bench) -> None:
    await bench("ev_state", 1, "C")
    await bench("present_card", VALID)
    await status(site, "Charging")


async def test_tc_048_3_reserve_an_unavailable_connector(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert result.status == "Accepted"
    await status(site, "Unavailable")
    assert await reserve(site) == "Unavailable"


async def test_tc_048_4_reserve_a_connector_that_does_not_exist(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site, connector_id=2) == "Rejected"


async def test_tc_049_reserve_the_charge_point(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site, connector_id=0) == "Accepted"
    await status(site, "Reserved")
    await bench("present_card", VALID)  # the reserved card first, as in TC_046_1
    await status(site, "Preparing")
    await plug_and_charge(site, bench)
    (transaction,) = site.csms.transactions.values()
    start = site.csms.calls("StartTransaction")[-1]
    assert start.payload.get("reservationId") == 7
    assert transaction.id_tag == VALID


async def test_tc_050_2_reserve_the_charge_point_when_every_connector_is_occupied(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    assert await reserve(site, connector_id=0) == "Occupied"


async def test_tc_051_cancel_a_reservation(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site) == "Accepted"
    await status(site, "Reserved")
    result = await site.csms.call(call.CancelReservation(reservation_id=7))
    assert result.status == "Accepted"
    await status(site, "Available")
    await charging(site, bench, VALID_2)
    assert "reservationId" not in site.csms.calls("StartTransaction")[-1].payload


async def test_tc_052_cancel_an_unknown_reservation(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site) == "Accepted"
    await status(site, "Reserved")
    result = await site.csms.call(call.CancelReservation(reservation_id=99))
    assert result.status == "Rejected"
    await asyncio.sleep(0.3)
    assert site.csms.last_status(1) == "Reserved"  # the reservation is kept


async def test_tc_053_use_a_reserved_connector_with_the_parent_id_tag(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    site.csms.authorizations[VALID_2] = {"status": "Accepted", "parentIdTag": GROUP}
    assert await reserve(site, id_tag=VALID, parent=GROUP) == "Accepted"
    await status(site, "Reserved")
    await bench("present_card", VALID_2)  # another tag of the reserved group
    await status(site, "Preparing")
    await bench("plug", 1)
    start = await site.csms.wait_for_action("StartTransaction")
    assert (start.payload["idTag"], start.payload.get("reservationId")) == (VALID_2, 7)


async def test_reserving_again_with_the_same_id_replaces_the_reservation(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await reserve(site, id_tag=VALID) == "Accepted"
    assert await reserve(site, id_tag=VALID_2) == "Accepted"  # same id 7: replaced
    await status(site, "Reserved")
    await bench("present_card", VALID_2)
    await status(site, "Preparing")


class TestConnectorZeroNotSupported:
    @pytest.fixture
    def site_options(self) -> SiteOptions:
        return SiteOptions(sample_interval=1, extra_ocpp="reserve_connector_zero_supported = false")

    async def test_tc_050_4_like_connector_zero_is_rejected_when_not_supported(
        self, site: SimSite, bench: Bench, agent: RunningAgent
    ) -> None:
        await booted(site)
        assert await reserve(site, connector_id=0) == "Rejected"
        assert await reserve(site, connector_id=1) == "Accepted"


async def test_the_feature_profile_and_key_are_reported(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.GetConfiguration(
        key=["SupportedFeatureProfiles", "ReserveConnectorZeroSupported"]))
    values = {e["key"]: e["value"] for e in result.configuration_key}
    assert "Reservation" in values["SupportedFeatureProfiles"].split(",")
    assert values["ReserveConnectorZeroSupported"] == "true"
    assert await change(site, "ReserveConnectorZeroSupported", "false") == "Rejected"


async def test_a_reservation_survives_a_kill_9_of_the_agent(site: SimSite, bench: Bench) -> None:
    """The CSMS still believes in the reservation after the charger restarted: the connector
    comes back Reserved and the reserved card's transaction carries the reservationId."""
    process = AgentProcess(site)
    try:
        await process.start()
        await booted(site)
        assert await reserve(site) == "Accepted"
        await status(site, "Reserved")
        await process.kill()
        since = len(site.csms.frames)
        await process.start()
        await site.csms.wait_for(lambda: statuses_since(site, since)[-1:] == ["Reserved"],
                                 within=30)
        await bench("present_card", VALID_2)  # still held for VALID
        await asyncio.sleep(0.5)
        assert not site.csms.calls("StartTransaction")
        await present_again(bench, VALID)
        await status(site, "Preparing")
        await plug_and_charge(site, bench)
        start = site.csms.calls("StartTransaction")[-1]
        assert start.payload.get("reservationId") == 7
    finally:
        await process.stop()
        print(process.tail())
    assert site.csms.violations == []
