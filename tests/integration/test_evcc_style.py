"""An evcc-style session: what evcc does as the charger's CSMS in its OCPP mode (issue 14),
against the strict 1.6 CSMS. On connect: ChangeAvailability, GetConfiguration, TriggerMessage
BootNotification / StatusNotification / MeterValues, MeterValuesSampledData with evcc's
measurands (SoC, which the charger does not measure, is Rejected and evcc carries on without
it), MeterValueSampleInterval 10, WebSocketPingInterval 30. Then it pauses and resumes the
charging EV with TxDefaultProfile limits and reads Current.Offered and GetCompositeSchedule
back; the simulated EV's draw follows the offer, in one transaction."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conformance.helpers import booted, change, charging, status
from tests.integration.conformance.test_smart_charging import composite, install, periods
from tests.integration.conftest import Bench, RunningAgent

MEASURANDS = ("Power.Active.Import,Energy.Active.Import.Register,Current.Import,Voltage,"
              "Current.Offered,Power.Offered")


def tx_default(limit: float) -> dict[str, Any]:
    """evcc's pause/resume profile: TxDefaultProfile on the connector, Absolute, one period."""
    return {"charging_profile_id": 1, "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile", "charging_profile_kind": "Absolute",
            "charging_schedule": {"charging_rate_unit": "A", "start_schedule":
                                  "2020-01-01T00:00:00Z",
                                  "charging_schedule_period": [{"start_period": 0,
                                                                "limit": limit}]}}


async def offered(site: SimSite) -> float:
    """Current.Offered of a triggered MeterValues, as evcc reads it."""
    before = len(site.csms.calls("MeterValues"))
    result = await site.csms.call(call.TriggerMessage(requested_message="MeterValues",
                                                      connector_id=1))
    assert result.status == "Accepted"
    frame = await site.csms.wait_for_action("MeterValues", before + 1)
    values = [v for mv in frame.payload["meterValue"] for v in mv["sampledValue"]
              if v.get("measurand") == "Current.Offered"]
    assert values, frame.payload
    return float(values[-1]["value"])


async def connect_like_evcc(site: SimSite) -> None:
    result = await site.csms.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert result.status == "Accepted"
    config = await site.csms.call(call.GetConfiguration())
    keys = {entry["key"]: entry.get("value") for entry in config.configuration_key}
    assert "SmartCharging" in keys["SupportedFeatureProfiles"]
    assert keys["ChargingScheduleAllowedChargingRateUnit"] == "Current,Power"
    for message in ("BootNotification", "StatusNotification", "MeterValues"):
        triggered = await site.csms.call(call.TriggerMessage(requested_message=message))
        assert triggered.status == "Accepted", message
    assert await change(site, "MeterValuesSampledData", MEASURANDS + ",SoC") == "Rejected"
    assert await change(site, "MeterValuesSampledData", MEASURANDS) == "Accepted"
    assert await change(site, "MeterValueSampleInterval", "10") == "Accepted"
    assert await change(site, "WebSocketPingInterval", "30") == "Accepted"


async def test_evcc_style_session(site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    await connect_like_evcc(site)
    transaction_id = await charging(site, bench)
    await bench.until_connector(lambda s: s["meter"]["current_a"][0] > 15, within=10)
    assert await offered(site) == 16

    assert await install(site, 1, tx_default(0)) == "Accepted"  # evcc pauses
    await status(site, "SuspendedEVSE")
    assert await offered(site) == 0
    assert periods(await composite(site, 60)) == [(0, 0)]
    await bench.until_connector(lambda s: s["meter"]["current_a"] == [0, 0, 0], within=15)

    assert await install(site, 1, tx_default(10)) == "Accepted"  # evcc resumes at 10 A
    await status(site, "Charging", within=15)
    await bench.until_connector(
        lambda s: all(abs(a - 10) < 0.5 for a in s["meter"]["current_a"]), within=15)
    assert await offered(site) == 10
    assert periods(await composite(site, 60, "W")) == [(0, 10 * 230 * 3)]
    assert not site.csms.calls("StopTransaction")
    assert site.csms.transactions[transaction_id].meter_stop is None
