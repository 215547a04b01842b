"""The charger's CSMS-visible configuration keys: types, ranges, access, current values.

Key names are the OCPP 1.6 ones (the richest flat key set); another OCPP version maps its own
variables onto them. Values are validated here, once, for every way they can change: the seed
from the TOML file, ChangeConfiguration, and values restored from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MEASURANDS = frozenset(
    {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Current.Offered",
        "Power.Offered",
        "Voltage",
        "Frequency",
    }
)

Value = int | bool | str
LOCAL_LIST_MAX = 1000  # LocalAuthListMaxLength
SEND_LOCAL_LIST_MAX = 100  # SendLocalListMaxLength


class SettingError(ValueError):
    """A value does not fit its key. ``args[0]`` explains what is allowed."""


@dataclass(frozen=True)
class KeySpec:
    name: str
    kind: type  # int, bool or str (a comma separated list for CSL keys)
    default: Value
    readonly: bool = False
    minimum: int | None = None
    maximum: int | None = None
    csl_items: frozenset[str] | None = None
    unit: str = ""  # shown beside the range in the README's key table, e.g. "s"

    def parse(self, text: str) -> Value:
        """Turn the text a CSMS sent into a typed value, or raise SettingError."""
        if self.kind is bool:
            return _parse_bool(text)
        if self.kind is int:
            return self._check_range(_parse_int(text))
        return self._check_csl(text)

    def _check_range(self, value: int) -> int:
        too_low = self.minimum is not None and value < self.minimum
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high:
            raise SettingError(f"{self.name}: {value} outside {self.minimum}..{self.maximum}")
        return value

    def _check_csl(self, text: str) -> str:
        if self.csl_items is None:
            return text
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in self.csl_items]
        if unknown:
            raise SettingError(f"{self.name}: unsupported {', '.join(unknown)}")
        return ",".join(items)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise SettingError(f"expected true or false, got {text!r}")
    return lowered == "true"


def _parse_int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise SettingError(f"expected an integer, got {text!r}") from None


def render(value: Value) -> str:
    """A value as OCPP transports it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def core_keys(number_of_connectors: int, phase_switch: bool = False) -> tuple[KeySpec, ...]:
    """Every key the charger reports, with its seed default. ``phase_switch``: a connector
    has a 1<->3 phase relay (ConnectorSwitch3to1PhaseSupported)."""
    measurands = MEASURANDS
    return (
        KeySpec("AllowOfflineTxForUnknownId", bool, False),
        KeySpec("AuthorizationCacheEnabled", bool, True),
        KeySpec("AuthorizeRemoteTxRequests", bool, True),
        KeySpec("ChargeProfileMaxStackLevel", int, 8, readonly=True),
        KeySpec("ChargingScheduleAllowedChargingRateUnit", str, "Current,Power", readonly=True,
                csl_items=frozenset({"Current", "Power"})),
        KeySpec("ChargingScheduleMaxPeriods", int, 24, readonly=True),
        KeySpec("ClockAlignedDataInterval", int, 0, minimum=0, maximum=86400, unit="s"),
        KeySpec("ConnectionTimeOut", int, 60, minimum=1, maximum=3600, unit="s"),
        KeySpec("ConnectorPhaseRotation", str, "NotApplicable"),
        KeySpec("ConnectorSwitch3to1PhaseSupported", bool, phase_switch, readonly=True),
        KeySpec("GetConfigurationMaxKeys", int, 64, readonly=True),
        KeySpec("HeartbeatInterval", int, 300, minimum=0, maximum=86400, unit="s"),
        KeySpec("LocalAuthListEnabled", bool, True),
        KeySpec("LocalAuthListMaxLength", int, LOCAL_LIST_MAX, readonly=True),
        KeySpec("LocalAuthorizeOffline", bool, True),
        KeySpec("LocalPreAuthorize", bool, False),
        KeySpec("MaxChargingProfilesInstalled", int, 16, readonly=True),
        KeySpec("MeterValuesAlignedData", str, "Energy.Active.Import.Register",
                csl_items=measurands),
        KeySpec("MeterValuesSampledData", str, "Energy.Active.Import.Register",
                csl_items=measurands),
        KeySpec("MeterValueSampleInterval", int, 60, minimum=0, maximum=86400, unit="s"),
        KeySpec("MinimumStatusDuration", int, 0, minimum=0, maximum=3600, unit="s"),
        KeySpec("NumberOfConnectors", int, number_of_connectors, readonly=True),
        KeySpec("ReserveConnectorZeroSupported", bool, True, readonly=True),
        KeySpec("ResetRetries", int, 1, minimum=0, maximum=10),
        KeySpec("StopTransactionOnEVSideDisconnect", bool, True),
        KeySpec("StopTransactionOnInvalidId", bool, True),
        KeySpec("StopTxnAlignedData", str, "", csl_items=measurands),
        KeySpec("StopTxnSampledData", str, "", csl_items=measurands),
        KeySpec("SendLocalListMaxLength", int, SEND_LOCAL_LIST_MAX, readonly=True),
        KeySpec("SupportedFeatureProfiles", str,
                "Core,FirmwareManagement,LocalAuthListManagement,RemoteTrigger,Reservation,"
                "SmartCharging",
                readonly=True),
        # What UpdateFirmware, GetDiagnostics and GetLog accept (agent.maintenance.transfer).
        KeySpec("SupportedFileTransferProtocols", str, "FTP,FTPS,HTTP,HTTPS", readonly=True),
        KeySpec("TransactionMessageAttempts", int, 5, minimum=1, maximum=100),
        KeySpec("TransactionMessageRetryInterval", int, 30, minimum=1, maximum=3600, unit="s"),
        KeySpec("UnlockConnectorOnEVSideDisconnect", bool, True),
        KeySpec("WebSocketPingInterval", int, 30, minimum=0, maximum=3600, unit="s"),
    )


class Settings:
    """Current values of every key; the single place they are read and changed."""

    def __init__(self, specs: Iterable[KeySpec], seed: Mapping[str, Value] | None = None) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._values: dict[str, Value] = {name: spec.default for name, spec in self._specs.items()}
        self._listeners: list[Callable[[str, Value], None]] = []
        for name, value in (seed or {}).items():
            self.restore(name, value)

    def restore(self, name: str, value: Value) -> None:
        """Set a value from a trusted source (file, store), re-validating it."""
        spec = self._spec(name)
        self._values[name] = spec.parse(render(value))

    def change(self, name: str, text: str) -> Value:
        """Apply a CSMS change; raises KeyError (unknown), PermissionError (read-only) or
        SettingError (bad value). Listeners hear about every accepted change."""
        spec = self._spec(name)
        if spec.readonly:
            raise PermissionError(name)
        value = spec.parse(text)
        self._values[name] = value
        for listener in self._listeners:
            listener(name, value)
        return value

    def subscribe(self, listener: Callable[[str, Value], None]) -> None:
        self._listeners.append(listener)

    def is_readonly(self, name: str) -> bool:
        return self._spec(name).readonly

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def get(self, name: str) -> Value:
        return self._values[self._spec(name).name]

    def int(self, name: str) -> int:
        value = self.get(name)
        assert isinstance(value, int) and not isinstance(value, bool)
        return value

    def bool(self, name: str) -> bool:
        value = self.get(name)
        assert isinstance(value, bool)
        return value

    def csl(self, name: str) -> tuple[str, ...]:
        value = self.get(name)
        assert isinstance(value, str)
        return tuple(item for item in value.split(",") if item)

    def _spec(self, name: str) -> KeySpec:
        if name in self._specs:
            return self._specs[name]
        for known, spec in self._specs.items():  # CiString: keys compare case-insensitively
            if known.lower() == name.lower():
                return spec
        raise KeyError(name)
