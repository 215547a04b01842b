"""OCTT Smart Charging cases: TC_056, TC_057, TC_058_1, TC_058_2, TC_059, TC_060, TC_066,
TC_067, TC_072, TC_082 (../shared/reference/ocpp16-conformance.md, "Smart charging"), against
the strict 1.6 CSMS, plus profiles kept across a kill -9 of the agent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.agent_process import AgentProcess
from tests.integration.conftest import Bench, RunningAgent

from .helpers import VALID, booted, charging, status

SLACK = 3  # s: the profile's start and the composite's start are a few seconds apart


def profile(pid: int, purpose: str, periods: list[tuple[int, float]], *, stack: int = 0,
            duration: int | None = None, unit: str = "A", kind: str = "Absolute",
            transaction_id: int | None = None, phases: int | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "charging_rate_unit": unit,
        "charging_schedule_period": [
            {"start_period": s, "limit": lim, **({"number_phases": phases} if phases else {})}
            for s, lim in periods],
    }
    if duration is not None:
        schedule["duration"] = duration
    if kind == "Absolute":
        schedule["start_schedule"] = datetime.now(UTC).isoformat(timespec="seconds") \
            .replace("+00:00", "Z")
    raw: dict[str, Any] = {"charging_profile_id": pid, "stack_level": stack,
                           "charging_profile_purpose": purpose, "charging_profile_kind": kind,
                           "charging_schedule": schedule}
    if transaction_id is not None:
        raw["transaction_id"] = transaction_id
    return raw


async def install(site: SimSite, connector_id: int, raw: dict[str, Any]) -> str:
    result = await site.csms.call(call.SetChargingProfile(connector_id=connector_id,
                                                          cs_charging_profiles=raw))
    return str(result.status)


async def composite(site: SimSite, duration: int, unit: str = "A",
                    connector_id: int = 1) -> Any:
    return await site.csms.call(call.GetCompositeSchedule(
        connector_id=connector_id, duration=duration, charging_rate_unit=unit))


def periods(result: Any) -> list[tuple[int, float]]:
    return [(p["start_period"], p["limit"])
            for p in result.charging_schedule["charging_schedule_period"]]


def assert_periods(result: Any, expected: list[tuple[int, float]]) -> None:
    """The limits exactly; each start within SLACK seconds earlier than given (the x of the
    test case: the seconds between the SetChargingProfile and the composite's start)."""
    got = periods(result)
    assert [lim for _, lim in got] == [lim for _, lim in expected], got
    for (start, _), (want, _) in zip(got, expected, strict=True):
        assert want - SLACK <= start <= want, got


async def test_tc_056_tx_default_profile(site: SimSite, bench: Bench,
                                         agent: RunningAgent) -> None:
    await booted(site)
    raw = profile(1, "TxDefaultProfile", [(0, 6)], duration=300, phases=3)
    assert await install(site, 1, raw) == "Accepted"
    result = await composite(site, 300)
    assert (result.status, result.connector_id) == ("Accepted", 1)
    schedule = result.charging_schedule
    assert (schedule["duration"], schedule["charging_rate_unit"]) == (300, "A")
    start = datetime.fromisoformat(result.schedule_start.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - start).total_seconds()) < 5
    assert periods(result)[0] == (0, 6)
    in_watts = profile(2, "TxDefaultProfile", [(0, 6000)], duration=300, unit="W", stack=1)
    assert await install(site, 1, in_watts) == "Accepted"
    assert periods(await composite(site, 300, "W"))[0] == (0, 6000)


async def test_tc_057_tx_profile(site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    raw = profile(1, "TxProfile", [(0, 6)], duration=300, transaction_id=transaction_id)
    assert await install(site, 1, raw) == "Accepted"
    result = await composite(site, 300)
    assert result.status == "Accepted" and periods(result)[0] == (0, 6)


async def test_tc_058_1_tx_profile_without_a_transaction(site: SimSite, bench: Bench,
                                                         agent: RunningAgent) -> None:
    await booted(site)
    raw = profile(1, "TxProfile", [(0, 6)], transaction_id=1)
    assert await install(site, 1, raw) == "Rejected"


async def test_tc_058_2_tx_profile_of_a_wrong_transaction(site: SimSite, bench: Bench,
                                                          agent: RunningAgent) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    raw = profile(1, "TxProfile", [(0, 6)], transaction_id=transaction_id + 1)
    assert await install(site, 1, raw) == "Rejected"


async def test_tc_059_remote_start_with_a_charging_profile(site: SimSite, bench: Bench,
                                                           agent: RunningAgent) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    raw = profile(1, "TxProfile", [(0, 10)], kind="Relative")
    result = await site.csms.call(call.RemoteStartTransaction(
        id_tag=VALID, connector_id=1, charging_profile=raw))
    assert result.status == "Accepted"
    await bench("ev_state", 1, "C")
    await status(site, "Charging")
    assert periods(await composite(site, 60)) == [(0, 10)]
    await bench.until_connector(lambda s: s["offered_current_a"] == 10, within=10)


async def test_tc_060_remote_start_with_a_non_tx_profile(site: SimSite, bench: Bench,
                                                         agent: RunningAgent) -> None:
    await booted(site)
    raw = profile(1, "TxDefaultProfile", [(0, 10)])
    result = await site.csms.call(call.RemoteStartTransaction(
        id_tag=VALID, connector_id=1, charging_profile=raw))
    assert result.status == "Rejected"
    assert not site.csms.calls("StartTransaction")


async def test_tc_066_composite_of_three_profiles(site: SimSite, bench: Bench,
                                                  agent: RunningAgent) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    assert await install(site, 0, profile(1, "ChargePointMaxProfile", [(0, 10)],
                                          duration=86400)) == "Accepted"
    assert await install(site, 1, profile(
        2, "TxDefaultProfile", [(0, 6), (60, 10), (120, 8), (180, 15), (260, 8)],
        duration=300)) == "Accepted"
    assert await install(site, 1, profile(
        3, "TxProfile", [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)], duration=260,
        transaction_id=transaction_id)) == "Accepted"
    assert_periods(await composite(site, 400), [(0, 8), (50, 10), (200, 6), (240, 10)])
    in_watts = await composite(site, 400, "W")
    assert [lim for _, lim in periods(in_watts)] == [8 * 690, 10 * 690, 6 * 690, 10 * 690]


async def test_tc_067_clear_charging_profiles(site: SimSite, bench: Bench,
                                              agent: RunningAgent) -> None:
    await booted(site)
    assert await install(site, 1, profile(1, "TxDefaultProfile", [(0, 6), (60, 8), (200, 10)],
                                          stack=1)) == "Accepted"
    assert await install(site, 1, profile(2, "TxDefaultProfile", [(0, 7), (100, 9)])) \
        == "Accepted"
    assert await install(site, 0, profile(3, "ChargePointMaxProfile", [(0, 11), (200, 12)])) \
        == "Accepted"
    cleared = await site.csms.call(call.ClearChargingProfile(id=1))
    assert cleared.status == "Accepted"
    assert_periods(await composite(site, 350), [(0, 7), (100, 9)])
    cleared = await site.csms.call(call.ClearChargingProfile(
        charging_profile_purpose="TxDefaultProfile", stack_level=0))
    assert cleared.status == "Accepted"
    assert_periods(await composite(site, 350), [(0, 11), (200, 12)])
    assert (await site.csms.call(call.ClearChargingProfile())).status == "Accepted"
    assert periods(await composite(site, 350)) == [(0, 16)]  # the connector's maximum
    assert (await site.csms.call(call.ClearChargingProfile(id=1))).status == "Unknown"


async def test_tc_072_stacking_charging_profiles(site: SimSite, bench: Bench,
                                                 agent: RunningAgent) -> None:
    await booted(site)
    assert await install(site, 1, profile(1, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)],
                                          duration=400)) == "Accepted"
    assert await install(site, 1, profile(2, "TxDefaultProfile", [(0, 7), (100, 9)], stack=1,
                                          duration=150)) == "Accepted"
    assert_periods(await composite(site, 350), [(0, 7), (100, 9), (150, 8), (200, 10)])


async def test_tc_082_tx_default_profile_during_a_transaction(site: SimSite, bench: Bench,
                                                              agent: RunningAgent) -> None:
    await booted(site)
    await charging(site, bench)
    await bench.until_connector(lambda s: s["offered_current_a"] == 16, within=10)
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 10)])) == "Accepted"
    assert periods(await composite(site, 60)) == [(0, 10)]
    await bench.until_connector(lambda s: s["offered_current_a"] == 10, within=15)


async def test_unknown_connector_is_rejected(site: SimSite, bench: Bench,
                                             agent: RunningAgent) -> None:
    await booted(site)
    assert (await composite(site, 60, connector_id=5)).status == "Rejected"
    assert await install(site, 5, profile(1, "TxDefaultProfile", [(0, 10)])) == "Rejected"


async def test_profiles_survive_a_kill_9_of_the_agent(site: SimSite, bench: Bench) -> None:
    process = AgentProcess(site)
    try:
        await process.start()
        await booted(site)
        assert await install(site, 0, profile(1, "ChargePointMaxProfile", [(0, 11)])) \
            == "Accepted"
        await process.kill()
        since = len(site.csms.frames)
        await process.start()
        await site.csms.wait_for(lambda: bool(site.csms.calls("BootNotification")[since:])
                                 or len(site.csms.calls("BootNotification")) > 1, within=30)
        await booted(site)
        assert periods(await composite(site, 60)) == [(0, 11)]
    finally:
        await process.stop()
        print(process.tail())
    assert site.csms.violations == []


async def test_min_charging_rate_is_reported_in_the_composite(site: SimSite,
                                                               agent: RunningAgent) -> None:
    """1.6 section 7.13: minChargingRate is for a smart charging algorithm; the charger keeps
    it and reports it back in GetCompositeSchedule.conf (validated by the strict CSMS)."""
    await booted(site)
    raw = profile(1, "TxDefaultProfile", [(0, 10)], duration=300)
    raw["charging_schedule"]["min_charging_rate"] = 7.5
    assert await install(site, 1, raw) == "Accepted"
    schedule = (await composite(site, 300)).charging_schedule
    assert schedule["min_charging_rate"] == 7.5
    assert "min_charging_rate" not in (await composite(site, 300, connector_id=0)
                                       ).charging_schedule


async def test_a_timestamp_that_is_not_a_date_time_is_refused(site: SimSite, bench: Bench,
                                                              agent: RunningAgent) -> None:
    """The 1.6 schema types validFrom, validTo and startSchedule as date-time; the library
    does not check formats, so the charger refuses such a profile (Rejected) instead of
    taking the timestamp as absent (a 0 A profile then in force at once)."""
    await booted(site)
    for field in ("valid_from", "valid_to", "start_schedule"):
        raw = profile(1, "TxDefaultProfile", [(0, 0)])
        target = raw["charging_schedule"] if field == "start_schedule" else raw
        target[field] = "next tuesday"
        assert await install(site, 1, raw) == "Rejected", field
    assert periods(await composite(site, 60)) == [(0, 16)]  # nothing was installed
    raw = profile(2, "TxProfile", [(0, 0)], kind="Relative")
    raw["valid_to"] = "2026-13-45T99:00:00Z"
    result = await site.csms.call(call.RemoteStartTransaction(
        id_tag=VALID, connector_id=1, charging_profile=raw))
    assert result.status == "Rejected"
    assert await install(site, 1, profile(3, "TxDefaultProfile", [(0, 8)])) == "Accepted"
