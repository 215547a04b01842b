"""OCTT configuration cases: TC_019, TC_021, TC_040_1, TC_040_2."""

from __future__ import annotations

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import RunningAgent

from .helpers import booted, change

REQUIRED_CORE_KEYS = {
    "AuthorizeRemoteTxRequests": None, "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False, "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True, "HeartbeatInterval": False, "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False, "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False, "MeterValueSampleInterval": False,
    "NumberOfConnectors": True, "ResetRetries": False, "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False, "StopTxnSampledData": False, "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False, "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": None,
}


async def test_tc_019_every_required_core_key_with_its_access(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.GetConfiguration())
    keys = {k["key"]: k for k in result.configuration_key}
    for name, readonly in REQUIRED_CORE_KEYS.items():
        assert name in keys, f"{name} missing"
        if readonly is not None:
            assert keys[name]["readonly"] is readonly, name
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert "RemoteTrigger" in keys["SupportedFeatureProfiles"]["value"]
    some = await site.csms.call(call.GetConfiguration(key=["HeartbeatInterval", "Nonsense"]))
    assert [k["key"] for k in some.configuration_key] == ["HeartbeatInterval"]
    assert some.unknown_key == ["Nonsense"]


async def test_tc_021_change_configuration_is_applied(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "MeterValueSampleInterval", "13") == "Accepted"
    result = await site.csms.call(call.GetConfiguration(key=["MeterValueSampleInterval"]))
    assert result.configuration_key[0]["value"] == "13"


async def test_tc_040_1_unknown_key_is_not_supported(site: SimSite, agent: RunningAgent) -> None:
    await booted(site)
    assert await change(site, "Testing", "true") == "NotSupported"


async def test_tc_040_2_bad_values_and_read_only_keys_are_rejected(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "MeterValueSampleInterval", "-1") == "Rejected"
    assert await change(site, "HeartbeatInterval", "often") == "Rejected"
    assert await change(site, "MeterValuesSampledData", "Energy.Bogus") == "Rejected"
    assert await change(site, "NumberOfConnectors", "4") == "Rejected"
