"""OCTT meter value cases: TC_070 (sampled), TC_071 (clock-aligned)."""

from __future__ import annotations

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import booted, change, charging, payloads


def measurands(meter_value: dict[str, object]) -> set[str]:
    return {v["measurand"] for v in meter_value["sampledValue"]}  # type: ignore[index,attr-defined]


async def test_tc_070_sampled_meter_values_and_stop_transaction_data(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "MeterValueSampleInterval", "1") == "Accepted"
    assert await change(site, "MeterValuesSampledData",
                        "Energy.Active.Import.Register,Power.Active.Import,Current.Import") \
        == "Accepted"
    assert await change(site, "StopTxnSampledData", "Energy.Active.Import.Register") \
        == "Accepted"
    transaction_id = await charging(site, bench)
    await site.csms.wait_for_action("MeterValues", count=2, within=5)
    sample = payloads(site, "MeterValues")[-1]
    assert sample["transactionId"] == transaction_id
    value = sample["meterValue"][0]
    assert measurands(value) == {"Energy.Active.Import.Register", "Power.Active.Import",
                                 "Current.Import"}
    assert {v["context"] for v in value["sampledValue"]} == {"Sample.Periodic"}
    phases = {v.get("phase") for v in value["sampledValue"] if v["measurand"] == "Current.Import"}
    assert phases == {"L1", "L2", "L3"}
    await bench("unplug", 1)
    stop = await site.csms.wait_for_action("StopTransaction")
    data = stop.payload["transactionData"]
    assert data and all(measurands(v) == {"Energy.Active.Import.Register"} for v in data)


async def test_tc_071_clock_aligned_meter_values(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "MeterValueSampleInterval", "0") == "Accepted"
    assert await change(site, "ClockAlignedDataInterval", "1") == "Accepted"
    assert await change(site, "StopTxnAlignedData", "Energy.Active.Import.Register") \
        == "Accepted"
    transaction_id = await charging(site, bench)
    count = len(site.csms.calls("MeterValues"))
    await site.csms.wait_for_action("MeterValues", count=count + 2, within=5)
    in_tx = [p for p in payloads(site, "MeterValues") if p.get("transactionId") == transaction_id]
    assert in_tx
    contexts = {v["context"] for p in in_tx for v in p["meterValue"][0]["sampledValue"]}
    assert contexts == {"Sample.Clock"}
    await bench("unplug", 1)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload.get("transactionData"), "StopTxnAlignedData goes into the stop"
