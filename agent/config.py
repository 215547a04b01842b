"""The agent's configuration: one TOML file, validated once at start.

:func:`load_config` and :func:`parse_config` return a frozen :class:`Config`, or raise
:class:`ConfigError` listing *every* problem at once, one per line. Each line names the dotted
key (``connector[1].meter.device_id``; arrays of tables count from 1 in file order), what was
given and what is allowed, so a user fixes the whole file in one pass.

The schema is declared once, as :class:`Key` and :class:`Table` specs below. The validator and
:func:`describe_schema` (the reference table in the README) both read it; a unit test keeps the
specs and the dataclasses in step. Checks that span keys (unique pins and Modbus addresses, bus
references, connector numbering) run after the per-key checks, on whatever was valid.

``[ocpp]`` holds seeds only: the store copies them on first start and the CSMS may change them
later (:meth:`OcppConfig.configuration_keys` gives their OCPP 1.6 names and string values).
The CSMS password never appears in an error message or a ``repr``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from agent.core.settings import KeySpec, core_keys

if TYPE_CHECKING:  # check-config runs on the standard library alone (the installer's check)
    from agent.core.context import PhaseSwitchSpec

__all__ = [
    "AuthorizationConfig",
    "BusConfig",
    "ChargerConfig",
    "Config",
    "ConfigError",
    "ConnectorConfig",
    "ContactorConfig",
    "CsmsConfig",
    "GpioConfig",
    "IndicatorConfig",
    "LockConfig",
    "LogConfig",
    "MeterConfig",
    "OcppConfig",
    "PhaseSwitchConfig",
    "PilotConfig",
    "RcdConfig",
    "ReaderConfig",
    "RecoveryConfig",
    "SupervisionConfig",
    "TamperConfig",
    "describe_ocpp_keys",
    "describe_schema",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """The configuration file is missing, unreadable, not TOML, or breaks the schema.

    ``problems`` holds one line per problem, each starting with the dotted key it concerns;
    ``str()`` gives them one per line, each prefixed with ``source`` (the file name).
    """

    def __init__(self, problems: Sequence[str], source: str = "<string>") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChargerConfig:
    id: str
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None
    state_dir: Path


@dataclass(frozen=True, kw_only=True)
class CsmsConfig:
    url: str
    password: str | None = field(repr=False)
    ocpp_version: str
    call_timeout: float
    reconnect_min: float
    reconnect_max: float
    ping_interval: int
    use_proxy: bool
    security_profile: int = 0
    allow_unencrypted: bool = False
    ca_file: Path | None = None
    cpo_name: str | None = None
    additional_root_certificate_check: bool = False


@dataclass(frozen=True, kw_only=True)
class OcppConfig:
    heartbeat_interval: int
    meter_value_sample_interval: int
    connection_timeout: int
    clock_aligned_data_interval: int
    meter_values_sampled_data: tuple[str, ...]
    authorize_remote_tx_requests: bool
    minimum_status_duration: int
    stop_transaction_on_ev_side_disconnect: bool
    local_pre_authorize: bool
    local_authorize_offline: bool
    authorization_cache_enabled: bool
    allow_offline_tx_for_unknown_id: bool
    reserve_connector_zero_supported: bool

    def configuration_keys(self) -> dict[str, str]:
        """The seeds as OCPP 1.6 configuration keys and values (``"HeartbeatInterval": "300"``)."""
        return {key.ocpp_key: _ocpp_value(getattr(self, key.name)) for key in _OCPP.keys}


@dataclass(frozen=True, kw_only=True)
class AuthorizationConfig:
    mode: str
    free_id_tag: str
    authorize_timeout: float


@dataclass(frozen=True, kw_only=True)
class GpioConfig:
    pin_factory: str | None


@dataclass(frozen=True, kw_only=True)
class BusConfig:
    name: str
    type: str
    port: str | None
    baudrate: int
    parity: str
    stopbits: int
    host: str | None
    tcp_port: int
    timeout: float
    retries: int


@dataclass(frozen=True, kw_only=True)
class ContactorConfig:
    pin: int
    active_high: bool
    feedback_pin: int | None
    feedback_active_high: bool


@dataclass(frozen=True, kw_only=True)
class PilotConfig:
    driver: str
    bus: str | None
    device_id: int
    poll_interval: float
    pwm_root: Path
    pwm_chip: int
    pwm_channel: int
    pwm_inverted: bool
    adc_port: int
    adc_device: int
    adc_channel: int
    adc_low_v: float
    adc_high_v: float
    threshold_a_b: float
    threshold_b_c: float
    threshold_c_d: float
    threshold_d_e: float
    threshold_e_f: float
    diode_low: float
    hysteresis: float


@dataclass(frozen=True, kw_only=True)
class MeterConfig:
    driver: str
    bus: str
    device_id: int
    plausibility: bool


@dataclass(frozen=True, kw_only=True)
class LockConfig:
    pin: int
    unlock_pin: int
    feedback_pin: int | None
    active_high: bool
    feedback_active_high: bool
    pulse: float
    timeout: float


@dataclass(frozen=True, kw_only=True)
class PhaseSwitchConfig:
    pin: int
    active_high: bool
    feedback_pin: int | None
    feedback_active_high: bool
    default_phases: int
    settle: float
    min_interval: float

    def spec(self) -> PhaseSwitchSpec:
        """What the core needs to know of the relay (agent/core/phases.py)."""
        from agent.core.context import PhaseSwitchSpec

        return PhaseSwitchSpec(self.default_phases, self.settle, self.min_interval)


@dataclass(frozen=True, kw_only=True)
class RcdConfig:
    pin: int
    active_high: bool


@dataclass(frozen=True, kw_only=True)
class TamperConfig:
    pin: int
    active_high: bool


@dataclass(frozen=True, kw_only=True)
class IndicatorConfig:
    led_pin: int | None
    red_pin: int | None
    green_pin: int | None
    blue_pin: int | None
    buzzer_pin: int | None
    active_high: bool


@dataclass(frozen=True, kw_only=True)
class ConnectorConfig:
    id: int
    max_current: int
    phases: int
    voltage: float
    contactor: ContactorConfig
    pilot: PilotConfig
    meter: MeterConfig
    lock: LockConfig | None  # None: a fixed cable
    rcd: RcdConfig | None
    phase_switch: PhaseSwitchConfig | None = None  # None: no 1<->3 phase relay
    evse_id: str | None = None

    @property
    def phase_switch_spec(self) -> PhaseSwitchSpec | None:
        """The phase relay as the core knows it (agent/core/phases.py), or None."""
        return self.phase_switch.spec() if self.phase_switch is not None else None


@dataclass(frozen=True, kw_only=True)
class ReaderConfig:
    driver: str
    port: str | None
    baudrate: int | None  # None: the driver's own default
    id_format: str
    byte_order: str


@dataclass(frozen=True, kw_only=True)
class RecoveryConfig:
    policy: str


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: str
    ocpp_frames: bool


@dataclass(frozen=True, kw_only=True)
class SupervisionConfig:
    idle_meter_interval: float


@dataclass(frozen=True, kw_only=True)
class UpdateConfig:
    releases: Path
    installer: str | None
    health_timeout: float
    transfer_timeout: float
    keep: int


@dataclass(frozen=True, kw_only=True)
class ApiTokenConfig:
    scope: str
    secret: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    listen: str
    tokens_file: Path | None
    max_body: int
    webhook_url: str | None
    pre_authorization_url: str | None
    pre_authorization_timeout: float
    bench_url: str | None
    tokens: tuple[ApiTokenConfig, ...]

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    url: str
    username: str | None
    password: str | None = field(repr=False)
    password_file: Path | None
    ca_file: Path | None
    client_id: str | None
    topic_prefix: str | None
    discovery: bool
    discovery_prefix: str
    tokens: str
    keepalive: int

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole, validated configuration. Build it with :func:`load_config`."""

    charger: ChargerConfig
    csms: CsmsConfig
    ocpp: OcppConfig
    authorization: AuthorizationConfig
    gpio: GpioConfig
    buses: tuple[BusConfig, ...]
    connectors: tuple[ConnectorConfig, ...]
    reader: ReaderConfig
    rcd: RcdConfig | None
    indicator: IndicatorConfig | None
    log: LogConfig
    recovery: RecoveryConfig
    supervision: SupervisionConfig
    update: UpdateConfig
    api: ApiConfig | None = None
    mqtt: MqttConfig | None = None
    tamper: TamperConfig | None = None

    @property
    def mqtt_prefix(self) -> str:
        """The topic prefix of the MQTT state and commands: ``mqtt.topic_prefix`` or
        ``evse-agent/<charger id>``."""
        given = self.mqtt.topic_prefix if self.mqtt is not None else None
        return given or f"evse-agent/{self.charger.id}"

    @property
    def csms_endpoint(self) -> str:
        """The URL the charger connects to: ``csms.url`` with the charger id appended."""
        return f"{self.csms.url.rstrip('/')}/{self.charger.id}"

    @property
    def evse_ids(self) -> dict[int, str]:
        """connector id -> the EVSE id the sessions API knows it by."""
        return {c.id: c.evse_id or f"{self.charger.id}*{c.id}" for c in self.connectors}

    def bus(self, name: str) -> BusConfig:
        """The ``[[bus]]`` called ``name`` (validation guarantees every reference exists)."""
        return next(bus for bus in self.buses if bus.name == name)


# --- the schema language -----------------------------------------------------------------------


class _Required(enum.Enum):
    TOKEN = "required"


REQUIRED: Final = _Required.TOKEN

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Key:
    """One TOML key: type, default (or :data:`REQUIRED`), what is allowed, a one-line doc.

    ``span`` is an inclusive range for numbers and a length range for strings. ``check`` returns
    a problem text or None and ``rule`` says in the docs what it allows. ``convert`` turns the
    valid TOML value into the dataclass value. Optional keys have ``default=None``.
    """

    name: str
    kind: type[object]
    doc: str
    default: object = REQUIRED
    span: tuple[float, float] | None = None
    choices: tuple[object, ...] = ()
    unit: str = ""
    check: Check | None = None
    rule: str = ""
    convert: Callable[[Any], object] | None = None
    secret: bool = False
    ocpp_key: str = ""


@dataclass(frozen=True)
class Table:
    """A TOML table (``count`` None) or array of tables (``count`` = allowed number of entries).

    ``attr`` is the field on the parent dataclass; ``target`` builds the dataclass from values.
    An ``optional`` table that the file leaves out is None (a connector without a lock).
    """

    name: str
    target: Callable[..., object]
    keys: tuple[Key, ...] = ()
    tables: tuple[Table, ...] = ()
    count: tuple[int, int] | None = None
    attr: str = ""
    optional: bool = False

    @property
    def field_name(self) -> str:
        return self.attr or self.name


# --- checks used by the schema -----------------------------------------------------------------

MEASURANDS: Final = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
    "Frequency",
    "Current.Offered",
    "Power.Offered",
)
PIN_FACTORIES: Final = ("lgpio", "rpigpio", "pigpio", "native", "mock", "evsim")
METER_DRIVERS: Final = ("sdm630", "sdm120", "sdm72", "abb-b23", "em340")
PILOT_DRIVERS: Final = ("evse-board", "pwm")
RECOVERY_POLICIES: Final = ("end",)  # agent.recovery.RecoveryPolicy; a test keeps them equal
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_ID_CHAR = re.compile(r"[A-Za-z0-9._:-]")


def _charge_point_id_problem(value: str) -> str | None:
    if set(value) <= {"."}:
        return f"{_show(value)} is a relative path segment, not an id"
    bad = sorted({char for char in value if not _ID_CHAR.fullmatch(char)})
    if not bad:
        return None
    shown = " ".join(repr(char) for char in bad)
    return (
        f"{_show(value)} contains {shown}; the id goes into the URL path, "
        "so use only letters A-Z a-z, digits and . _ : -"
    )


def _url_problem(url: str, schemes: tuple[str, str], credentials: str) -> str | None:
    """A URL of one of two ``schemes`` with a host and without user info (``credentials``
    says which keys hold them), or its problem."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{_show(url)} is not a valid URL"
    if "@" in parts.netloc:  # never echo credentials
        return f"must not contain a user name or password; set {credentials} instead"
    if parts.scheme not in schemes or not parts.hostname:
        return (f"{_show(url)} must start with {schemes[0]}:// or {schemes[1]}:// followed "
                "by a host")
    return None


def _ws_url_problem(url: str) -> str | None:
    problem = _url_problem(url, ("ws", "wss"), "csms.password")
    if problem is not None:
        return problem
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return f"{_show(url)} must not have a query or fragment; the charger id is appended to it"
    return None


def _serial_port_problem(port: str) -> str | None:
    if port.startswith("/") or "://" in port:
        return None
    return (
        f"{_show(port)} is neither a device path (/dev/ttyUSB0) "
        "nor a pyserial URL (socket://127.0.0.1:8402)"
    )


def _absolute_path_problem(path: str) -> str | None:
    return None if path.startswith("/") else f"{_show(path)} is not an absolute path"


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(","))


def _measurands_problem(text: str) -> str | None:
    items = _split_list(text)
    unknown = [item for item in items if item not in MEASURANDS]
    if unknown:
        shown = ", ".join(repr(item) for item in unknown)
        verb = "is" if len(unknown) == 1 else "are"
        return f"{shown} {verb} not allowed; choose each item from: {', '.join(MEASURANDS)}"
    if len(set(items)) < len(items):
        return f"{_show(text)} names a measurand twice"
    return None


# --- the schema --------------------------------------------------------------------------------

_SECONDS = "seconds"
_BCM = "BCM GPIO number"
_MODBUS_ID = "Modbus address"
_PORT_RULE = "device path or pyserial URL"

_CHARGER = Table("charger", ChargerConfig, keys=(
    Key("id", str, "OCPP charge point id; appended to csms.url as the last path segment",
        span=(1, 48), check=_charge_point_id_problem, rule="letters, digits and `. _ : -`"),
    Key("vendor", str, "chargePointVendor in BootNotification (OCPP 1.6 CiString20)",
        default="evse-agent", span=(1, 20)),
    Key("model", str, "chargePointModel in BootNotification (CiString20)",
        default="Pi-AC", span=(1, 20)),
    Key("serial_number", str, "chargePointSerialNumber in BootNotification (CiString25)",
        default=None, span=(1, 25)),
    Key("firmware_version", str, "firmwareVersion in BootNotification (CiString50)",
        default=None, span=(1, 50)),
    Key("state_dir", str, "directory of the agent's database; a relative path is relative to "
        "the configuration file's directory",
        default="/var/lib/evse-agent", span=(1, 4096), convert=Path),
))

_CSMS = Table("csms", CsmsConfig, keys=(
    Key("url", str, "CSMS WebSocket URL; the charger id is appended as a path segment",
        span=(1, 512), check=_ws_url_problem, rule="`ws://…` or `wss://…`, no user info"),
    Key("password", str, "HTTP Basic auth password (AuthorizationKey); never printed",
        default=None, span=(8, 40), secret=True),
    Key("ocpp_version", str, "OCPP version spoken to the CSMS", default="1.6",
        choices=("1.6", "2.0.1")),
    Key("call_timeout", float, "how long to wait for the CSMS to answer a call",
        default=30.0, span=(1, 300), unit=_SECONDS),
    Key("reconnect_min", float, "first reconnect delay; doubles up to reconnect_max",
        default=1.0, span=(0.1, 60), unit=_SECONDS),
    Key("reconnect_max", float, "longest reconnect delay",
        default=60.0, span=(1, 3600), unit=_SECONDS),
    Key("ping_interval", int, "WebSocket ping interval; 0 turns pings off",
        default=30, span=(0, 3600), unit=_SECONDS),
    Key("use_proxy", bool, "connect through the proxy named in the environment", default=False),
    Key("security_profile", int, "seed of SecurityProfile: 0 none (the URL as given), 1 Basic "
        "auth over ws://, 2 TLS + Basic auth, 3 TLS with a client certificate (docs/security.md)",
        default=0, span=(0, 3)),
    Key("allow_unencrypted", bool, "allow security profile 1 (Basic auth over plain ws://)",
        default=False),
    Key("ca_file", str, "PEM file of the CSMS root certificate(s), installed at start as "
        "CentralSystemRootCertificate (profiles 2 and 3)", default=None, span=(1, 4096),
        convert=Path),
    Key("cpo_name", str, "seed of CpoName: the O of the charge point certificate's CSR",
        default=None, span=(1, 64)),
    Key("additional_root_certificate_check", bool, "AdditionalRootCertificateCheck (read-only "
        "for the CSMS): one CentralSystemRootCertificate at a time; a new one must be signed "
        "by it and replaces it once a connection verified with the new one succeeded "
        "(docs/security.md)", default=False),
))

_OCPP_SPECS: Final = {spec.name: spec for spec in core_keys(1)}


def _seed_span(ocpp_key: str) -> tuple[float, float]:
    """The range the CSMS may set ``ocpp_key`` to: a seed in the file is held to the same."""
    spec = _OCPP_SPECS[ocpp_key]
    assert spec.minimum is not None and spec.maximum is not None
    return (spec.minimum, spec.maximum)


def _seconds_seed(name: str, doc: str, default: int, ocpp_key: str) -> Key:
    return Key(name, int, doc, default=default, span=_seed_span(ocpp_key), unit=_SECONDS,
               ocpp_key=ocpp_key)


_OCPP = Table("ocpp", OcppConfig, keys=(
    _seconds_seed("heartbeat_interval", "seed of HeartbeatInterval", 300, "HeartbeatInterval"),
    _seconds_seed("meter_value_sample_interval", "seed of MeterValueSampleInterval; 0 = off",
                  60, "MeterValueSampleInterval"),
    _seconds_seed("connection_timeout", "seed of ConnectionTimeOut (plug-in to authorization)",
                  60, "ConnectionTimeOut"),
    _seconds_seed("clock_aligned_data_interval", "seed of ClockAlignedDataInterval; 0 = off",
                  0, "ClockAlignedDataInterval"),
    Key("meter_values_sampled_data", str, "seed of MeterValuesSampledData (comma-separated)",
        default="Energy.Active.Import.Register,Power.Active.Import",
        check=_measurands_problem, rule="each of: " + ", ".join(f"`{m}`" for m in MEASURANDS),
        convert=_split_list, ocpp_key="MeterValuesSampledData"),
    Key("authorize_remote_tx_requests", bool, "seed of AuthorizeRemoteTxRequests",
        default=True, ocpp_key="AuthorizeRemoteTxRequests"),
    _seconds_seed("minimum_status_duration", "seed of MinimumStatusDuration",
                  0, "MinimumStatusDuration"),
    Key("stop_transaction_on_ev_side_disconnect", bool,
        "seed of StopTransactionOnEVSideDisconnect",
        default=True, ocpp_key="StopTransactionOnEVSideDisconnect"),
    Key("local_pre_authorize", bool, "seed of LocalPreAuthorize",
        default=False, ocpp_key="LocalPreAuthorize"),
    Key("local_authorize_offline", bool, "seed of LocalAuthorizeOffline",
        default=True, ocpp_key="LocalAuthorizeOffline"),
    Key("authorization_cache_enabled", bool, "seed of AuthorizationCacheEnabled",
        default=True, ocpp_key="AuthorizationCacheEnabled"),
    Key("allow_offline_tx_for_unknown_id", bool, "seed of AllowOfflineTxForUnknownId",
        default=False, ocpp_key="AllowOfflineTxForUnknownId"),
    Key("reserve_connector_zero_supported", bool, "seed of ReserveConnectorZeroSupported "
        "(read-only in OCPP): may the CSMS reserve connector 0, the charger as a whole",
        default=True, ocpp_key="ReserveConnectorZeroSupported"),
))

_AUTHORIZATION = Table("authorization", AuthorizationConfig, keys=(
    Key("mode", str, "ocpp: tokens are authorized through OCPP; free: every EV may charge",
        default="ocpp", choices=("ocpp", "free")),
    Key("free_id_tag", str, "idTag of the sessions started in free mode (CiString20)",
        default="FREEVEND", span=(1, 20)),
    Key("authorize_timeout", float, "how long to wait for Authorize.conf before the offline "
        "rules decide (15 s, as the platforms integrators know do; some CSMSs validate live)",
        default=15.0, span=(1, 120), unit=_SECONDS),
))

_GPIO = Table("gpio", GpioConfig, keys=(
    Key("pin_factory", str, "gpiozero pin factory; unset = gpiozero's default",
        default=None, choices=PIN_FACTORIES),
))

_BUS = Table("bus", BusConfig, count=(0, 8), attr="buses", keys=(
    Key("name", str, "name the connectors use to refer to this bus; unique", span=(1, 32)),
    Key("type", str, "Modbus RTU over a serial line, or Modbus TCP",
        default="rtu", choices=("rtu", "tcp")),
    Key("port", str, "serial port of an rtu bus (required for rtu)",
        default=None, span=(1, 4096), check=_serial_port_problem, rule=_PORT_RULE),
    Key("baudrate", int, "serial speed of an rtu bus", default=9600, choices=BAUDRATES),
    Key("parity", str, "serial parity of an rtu bus", default="N", choices=("N", "E", "O")),
    Key("stopbits", int, "serial stop bits of an rtu bus", default=1, choices=(1, 2)),
    Key("host", str, "host name or address of a tcp bus (required for tcp)",
        default=None, span=(1, 253)),
    Key("tcp_port", int, "TCP port of a tcp bus", default=502, span=(1, 65535)),
    Key("timeout", float, "how long to wait for a device to answer",
        default=0.5, span=(0.05, 10), unit=_SECONDS),
    Key("retries", int, "how often to repeat a request that got no answer",
        default=1, span=(0, 5)),
))

_CONTACTOR = Table("contactor", ContactorConfig, keys=(
    Key("pin", int, "GPIO that drives the contactor (relay)", span=(0, 27), unit=_BCM),
    Key("active_high", bool, "true when a high level closes the contactor", default=True),
    Key("feedback_pin", int, "GPIO reading the contactor's auxiliary contact; unset = none",
        default=None, span=(0, 27), unit=_BCM),
    Key("feedback_active_high", bool, "true when a high level means closed", default=True),
))

_VOLTS = "V on the pilot wire"
_PWM_ONLY = " (driver pwm)"

_PILOT = Table("pilot", PilotConfig, keys=(
    Key("driver", str, "control pilot hardware: an EVSE board over Modbus, or the Pi's own "
        "hardware PWM with an MCP3008 ADC reading the pilot (needs an analog front end)",
        default="evse-board", choices=PILOT_DRIVERS),
    Key("bus", str, "name of the [[bus]] the EVSE board is on (required for evse-board)",
        default=None, span=(1, 32)),
    Key("device_id", int, "Modbus address of the EVSE board",
        default=1, span=(1, 247), unit=_MODBUS_ID),
    Key("poll_interval", float, "how often the pilot state is read, on a fixed schedule "
        "(evse-board: twice as often while the EV charges, C/D, and every 0.4 s, or this "
        "interval if longer, with nothing plugged in, A; pwm: one ADC burst each)",
        default=0.05, span=(0.001, 1.0), unit=_SECONDS),
    Key("pwm_root", str, "the kernel's PWM class directory that holds the chips; the "
        "simulator's tree for a simulated site (its pwm_root)" + _PWM_ONLY,
        default="/sys/class/pwm", span=(1, 4096), check=_absolute_path_problem,
        rule="an absolute path", convert=Path),
    Key("pwm_chip", int, "sysfs PWM chip (<pwm_root>/pwmchipN)" + _PWM_ONLY,
        default=0, span=(0, 7)),
    Key("pwm_channel", int, "channel of the PWM chip; dtoverlay=pwm-2chan: 0 = GPIO18, "
        "1 = GPIO19" + _PWM_ONLY, default=0, span=(0, 3)),
    Key("pwm_inverted", bool, "true when the pilot driver stage inverts the PWM" + _PWM_ONLY,
        default=False),
    Key("adc_port", int, "SPI port of the MCP3008" + _PWM_ONLY, default=0, span=(0, 1)),
    Key("adc_device", int, "SPI chip select of the MCP3008" + _PWM_ONLY, default=0, span=(0, 1)),
    Key("adc_channel", int, "MCP3008 channel the pilot divider feeds" + _PWM_ONLY,
        default=0, span=(0, 7)),
    Key("adc_low_v", float, "pilot voltage at ADC reading 0 (calibrate to the divider)"
        + _PWM_ONLY, default=-12.0, span=(-20, 0), unit=_VOLTS),
    Key("adc_high_v", float, "pilot voltage at full-scale ADC reading" + _PWM_ONLY,
        default=12.0, span=(0, 20), unit=_VOLTS),
    Key("threshold_a_b", float, "high plateau above this is A, below B" + _PWM_ONLY,
        default=10.5, span=(-12, 12), unit=_VOLTS),
    Key("threshold_b_c", float, "high plateau above this is B, below C" + _PWM_ONLY,
        default=7.5, span=(-12, 12), unit=_VOLTS),
    Key("threshold_c_d", float, "high plateau above this is C, below D" + _PWM_ONLY,
        default=4.5, span=(-12, 12), unit=_VOLTS),
    Key("threshold_d_e", float, "high plateau above this is D, below E" + _PWM_ONLY,
        default=1.5, span=(-12, 12), unit=_VOLTS),
    Key("threshold_e_f", float, "high plateau above this is E, at or below F" + _PWM_ONLY,
        default=-10.0, span=(-12, 12), unit=_VOLTS),
    Key("diode_low", float, "low plateau must reach this for the diode check" + _PWM_ONLY,
        default=-10.0, span=(-12, 0), unit=_VOLTS),
    Key("hysteresis", float, "how far a threshold moves away from the state in force; "
        "below half the smallest threshold gap" + _PWM_ONLY,
        default=0.4, span=(0, 5), unit="V"),
))

_METER = Table("meter", MeterConfig, keys=(
    Key("driver", str, "energy meter model", choices=METER_DRIVERS),
    Key("bus", str, "name of the [[bus]] the meter is on", span=(1, 32)),
    Key("device_id", int, "Modbus address of the meter",
        default=2, span=(1, 247), unit=_MODBUS_ID),
    Key("plausibility", bool, "discard readings that cannot be right (energy backwards or "
        "jumping, voltage or power out of range); several in a row are PowerMeterFailure",
        default=True),
))

_LOCK = Table("lock", LockConfig, optional=True, keys=(
    Key("pin", int, "GPIO that drives the lock motor towards locked (leave the table out for "
        "a fixed cable: UnlockConnector is then NotSupported)", span=(0, 27), unit=_BCM),
    Key("unlock_pin", int, "GPIO that drives the lock motor towards open",
        span=(0, 27), unit=_BCM),
    Key("feedback_pin", int, "GPIO reading the lock's position contact; unset = none (then "
        "a lock failure cannot be seen)", default=None, span=(0, 27), unit=_BCM),
    Key("active_high", bool, "true when a high level energizes a motor output", default=True),
    Key("feedback_active_high", bool, "true when a high level means locked", default=True),
    Key("pulse", float, "how long a motor output is energized per move",
        default=0.6, span=(0.05, 5), unit=_SECONDS),
    Key("timeout", float, "how long the feedback may take to confirm a move (>= pulse)",
        default=2.0, span=(0.1, 10), unit=_SECONDS),
))

_RCD = Table("rcd", RcdConfig, optional=True, keys=(
    Key("pin", int, "GPIO reading the RCD/RDC-DD trip contact; a trip opens the contactor at "
        "once and reports GroundFailure until the RCD is reset and the EV unplugged",
        span=(0, 27), unit=_BCM),
    Key("active_high", bool, "true when a high level means tripped", default=True),
))

_TAMPER = Table("tamper", TamperConfig, optional=True, keys=(
    Key("pin", int, "GPIO reading the enclosure's tamper switch; opening the enclosure sends "
        "the security event TamperDetectionActivated", span=(0, 27), unit=_BCM),
    Key("active_high", bool, "true when a high level means the enclosure is open",
        default=True),
))

_PHASE_SWITCH = Table("phase_switch", PhaseSwitchConfig, optional=True, keys=(
    Key("pin", int, "GPIO of the relay that connects L2 and L3 (energized: three phases, "
        "released: one); leave the table out without one. The charger switches only with "
        "the EV paused and the contactor open (docs/smart-charging.md)",
        span=(0, 27), unit=_BCM),
    Key("active_high", bool, "true when a high level energizes the relay", default=True),
    Key("feedback_pin", int, "GPIO reading the relay's auxiliary contact; unset = none",
        default=None, span=(0, 27), unit=_BCM),
    Key("feedback_active_high", bool, "true when a high level means L2 and L3 connected",
        default=True),
    Key("default_phases", int, "phases at start-up and when nothing asks for fewer",
        default=3, choices=(1, 3)),
    Key("settle", float, "pause between the relay moving and the EV being offered current "
        "again", default=5.0, span=(1, 120), unit=_SECONDS),
    Key("min_interval", float, "least time between the starts of two switches, to spare the "
        "contactor and the EV", default=300.0, span=(10, 86400), unit=_SECONDS),
))

_CONNECTOR = Table("connector", ConnectorConfig, count=(1, 8), attr="connectors",
                   tables=(_CONTACTOR, _PILOT, _METER, _LOCK, _RCD, _PHASE_SWITCH), keys=(
    Key("id", int, "OCPP connector id; connectors are numbered 1..N in file order",
        span=(1, 8)),
    Key("max_current", int, "most current the connector may offer (cable, breaker)",
        default=16, span=(6, 80), unit="amps"),
    Key("phases", int, "phases wired to the connector", default=3, choices=(1, 3)),
    Key("voltage", float, "nominal voltage per phase: turns a charging limit in W into A "
        "(P = U * I * phases, docs/smart-charging.md)", default=230.0, span=(100, 277),
        unit="volts"),
    Key("evse_id", str, "EVSE id the sessions API knows the connector by (e.g. "
        "DE*ABC*E1234*1); unset = <charger.id>*<connector id>", default=None, span=(1, 64)),
))

_READER = Table("reader", ReaderConfig, keys=(
    Key("driver", str, "token reader hardware; one reader serves all connectors",
        default="none", choices=("none", "rdm6300", "pn532")),
    Key("port", str, "serial port of the reader (required unless driver is none)",
        default=None, span=(1, 4096), check=_serial_port_problem, rule=_PORT_RULE),
    Key("baudrate", int, "serial speed of the reader; unset = the module's default "
        "(rdm6300 9600, pn532 115200)", default=None, choices=BAUDRATES),
    Key("id_format", str,
        "rdm6300 idTag format: hex = card number in hex, hex10 = all 10 hex digits read, "
        "decimal = card number in decimal",
        default="hex", choices=("hex", "hex10", "decimal")),
    Key("byte_order", str, "pn532 idTag: UID bytes as read, or reversed (as some CSMSs and "
        "card lists print them)", default="as-read", choices=("as-read", "reversed")),
))

_INDICATOR = Table("indicator", IndicatorConfig, optional=True, keys=(
    Key("led_pin", int, "GPIO of a single status LED; unset = none",
        default=None, span=(0, 27), unit=_BCM),
    Key("red_pin", int, "GPIO of an RGB LED's red input (set all three or none)",
        default=None, span=(0, 27), unit=_BCM),
    Key("green_pin", int, "GPIO of an RGB LED's green input", default=None, span=(0, 27),
        unit=_BCM),
    Key("blue_pin", int, "GPIO of an RGB LED's blue input", default=None, span=(0, 27),
        unit=_BCM),
    Key("buzzer_pin", int, "GPIO of a buzzer; unset = none", default=None, span=(0, 27),
        unit=_BCM),
    Key("active_high", bool, "true when a high level lights the LEDs / sounds the buzzer",
        default=True),
))

_LOG = Table("log", LogConfig, keys=(
    Key("level", str, "log level of the agent", default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("ocpp_frames", bool, "log every OCPP frame sent and received", default=True),
))

_RECOVERY = Table("recovery", RecoveryConfig, keys=(
    Key("policy", str, "what start-up does with a transaction a crash or power cut left open: "
        "end = stop it with reason PowerLoss and a meterStop read live from the meter",
        default="end", choices=RECOVERY_POLICIES),
))

_SUPERVISION = Table("supervision", SupervisionConfig, keys=(
    Key("idle_meter_interval", float, "how often each meter is read while nothing else reads "
        "it, so a dead meter is reported before the next session (while it fails: every "
        "second); a meter fault shows within this plus about 2 s and the bus timeouts",
        default=5.0, span=(1, 300), unit=_SECONDS),
))

_UPDATE = Table("update", UpdateConfig, keys=(
    Key("releases", str, "directory of the side-by-side releases and the `current` link the "
        "service runs (docs/updates.md); install.sh makes PREFIX/releases",
        default="/opt/evse-agent/releases", span=(1, 4096), convert=Path),
    Key("installer", str, "command that installs a release (environment: EVSE_RELEASE_DIR, "
        "EVSE_WHEELS, EVSE_REQUIREMENT, EVSE_PYTHON); unset = a new venv and pip",
        default=None, span=(1, 4096)),
    Key("health_timeout", float, "how long a new release has to register with the CSMS and "
        "read every meter before the previous one comes back", default=300.0, span=(1, 3600),
        unit=_SECONDS),
    Key("transfer_timeout", float, "how long one download or upload may stall",
        default=60.0, span=(1, 600), unit=_SECONDS),
    Key("keep", int, "releases kept on disk, the running one included", default=3,
        span=(2, 10)),
))

API_SCOPES: Final = ("read", "control")


def _listen_problem(value: str) -> str | None:
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"expected host:port (e.g. 127.0.0.1:8080), got {value!r}"
    return None


def _http_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http:// or https:// URL, got {url!r}"
    return None


_API_TOKEN = Table("token", ApiTokenConfig, count=(0, 32), attr="tokens", keys=(
    Key("scope", str, "read: GET only; control: also start and stop sessions",
        choices=API_SCOPES),
    Key("secret", str, "the bearer token (at least 16 characters)", span=(16, 256),
        secret=True),
))

_API = Table("api", ApiConfig, optional=True, tables=(_API_TOKEN,), keys=(
    Key("listen", str, "address of the local sessions API; leave [api] out to turn it off; "
        "a non-loopback address exposes it to the network",
        default="127.0.0.1:8080", span=(3, 300), check=_listen_problem, rule="host:port"),
    Key("tokens_file", str, "file of tokens, one `scope secret` a line (scope read or "
        "control); must be readable by the service user only (mode 0600)",
        default=None, span=(1, 4096), convert=Path),
    Key("max_body", int, "largest request body accepted", default=16384,
        span=(256, 1 << 20), unit="bytes"),
    Key("webhook_url", str, "http(s) URL that gets the session events and start "
        "notifications (POST, JSON, at least once, in order); unset = none",
        default=None, span=(8, 2048), check=_http_url_problem, rule="http:// or https:// URL"),
    Key("pre_authorization_url", str, "http(s) URL asked before every API start (a payment "
        "terminal, a billing system; docs/api.md); unset = none",
        default=None, span=(8, 2048), check=_http_url_problem, rule="http:// or https:// URL"),
    Key("pre_authorization_timeout", float, "how long the pre-authorization hook may take",
        default=10.0, span=(0.5, 60), unit=_SECONDS),
    Key("bench_url", str, "simulation only (gpio.pin_factory = \"evsim\"): the simulated "
        "world's bench API, whose controls the dashboard shows through /api/v1/bench; "
        "unset = no bench controls", default=None, span=(8, 2048), check=_http_url_problem,
        rule="http:// or https:// URL"),
))

MQTT_TOKENS: Final = ("masked", "full", "hidden")


def _mqtt_url_problem(url: str) -> str | None:
    problem = _url_problem(url, ("mqtt", "mqtts"), "mqtt.username and mqtt.password")
    if problem is not None:
        return problem
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{_show(url)} must be mqtt(s)://host[:port] only, without a path or query"
    return None


def _topic_problem(topic: str) -> str | None:
    if any(char in topic for char in "+#\0"):
        return f"{_show(topic)} contains a wildcard (+ or #) or NUL; a prefix is a plain topic"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return f"{_show(topic)} must not start or end with / nor have empty levels"
    return None


_MQTT = Table("mqtt", MqttConfig, optional=True, keys=(
    Key("url", str, "MQTT broker; leave [mqtt] out to turn MQTT off (docs/home-assistant.md)",
        span=(8, 512), check=_mqtt_url_problem,
        rule="`mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS)"),
    Key("username", str, "user name at the broker; unset = anonymous", default=None,
        span=(1, 256)),
    Key("password", str, "password at the broker; never printed (or mqtt.password_file)",
        default=None, span=(1, 256), secret=True),
    Key("password_file", str, "file holding the broker password; must be readable by the "
        "service user only (mode 0600)", default=None, span=(1, 4096), convert=Path),
    Key("ca_file", str, "PEM file of the CA(s) that signed the broker's certificate "
        "(mqtts://); unset = the system's CAs", default=None, span=(1, 4096), convert=Path),
    Key("client_id", str, "MQTT client identifier; unset = evse-agent-<charger id>",
        default=None, span=(1, 64)),
    Key("topic_prefix", str, "prefix of the state, event and command topics; unset = "
        "evse-agent/<charger id>", default=None, span=(1, 200), check=_topic_problem,
        rule="topic levels without + # or empty levels"),
    Key("discovery", bool, "publish Home Assistant MQTT discovery payloads", default=True),
    Key("discovery_prefix", str, "Home Assistant's discovery prefix", default="homeassistant",
        span=(1, 200), check=_topic_problem, rule="topic levels without + # or empty levels"),
    Key("tokens", str, "how id tags appear in MQTT state and events: masked (last 4 "
        "characters), full, or hidden", default="masked", choices=MQTT_TOKENS),
    Key("keepalive", int, "MQTT keep-alive; the broker publishes the last will after 1.5x "
        "this without a packet", default=30, span=(5, 3600), unit=_SECONDS),
))

_ROOT = Table("", Config, tables=(
    _CHARGER, _CSMS, _OCPP, _AUTHORIZATION, _GPIO, _BUS, _CONNECTOR, _READER, _RCD, _INDICATOR,
    _LOG, _RECOVERY, _SUPERVISION, _UPDATE, _API, _MQTT, _TAMPER,
))


# --- showing values ----------------------------------------------------------------------------

_KIND_NAMES: Final[dict[type[object], str]] = {
    str: "string", int: "integer", float: "float", bool: "boolean",
}
_EXPECTED: Final[dict[type[object], str]] = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean (true or false)",
}


def _show(value: object) -> str:
    """A value as a user would write it, shortened: ``'rdm'``, ``16``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: object) -> str:
    return value if isinstance(value, str) else _show(value)


def _describe(value: object, secret: bool = False) -> str:
    """What TOML type a value has, with the value unless it is secret: ``string '16'``."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    kind = _KIND_NAMES.get(type(value), "date/time")
    return kind if secret else f"{kind} {_show(value)}"


def _number(value: float) -> str:
    return f"{value:g}"


def _ocpp_value(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return _show(value) if isinstance(value, bool) else str(value)


# --- checking one value ------------------------------------------------------------------------


def _has_kind(kind: type[object], value: object) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, not in TOML
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _type_problem(key: Key, value: object) -> str | None:
    if _has_kind(key.kind, value):
        return None
    return f"expected {_EXPECTED[key.kind]}, got {_describe(value, key.secret)}"


def _choice_problem(key: Key, value: object) -> str | None:
    if not key.choices or value in key.choices:
        return None
    allowed = ", ".join(_plain(choice) for choice in key.choices)
    return f"{_show(value)} is not allowed; choose one of: {allowed}"


def _span_problem(key: Key, value: Any) -> str | None:
    if key.span is None:
        return None
    low, high = key.span
    allowed = f"allowed {_number(low)}..{_number(high)}"
    if isinstance(value, str):
        if low <= len(value) <= high:
            return None
        given = f"{len(value)} characters given" if key.secret else (
            f"{_show(value)} has {len(value)} characters")
        return f"{given}; {allowed} characters"
    if low <= value <= high:
        return None
    unit = f" ({key.unit})" if key.unit else ""
    return f"{_show(value)} is out of range; {allowed}{unit}"


def _value_problem(key: Key, value: object) -> str | None:
    problem = _type_problem(key, value) or _choice_problem(key, value)
    problem = problem or _span_problem(key, value)
    if problem is None and key.check is not None:
        problem = key.check(value)
    return problem


def _convert(key: Key, value: Any) -> object:
    if value is None:
        return None
    if key.kind is float:
        value = float(value)
    return key.convert(value) if key.convert else value


# --- reading tables ----------------------------------------------------------------------------

Values = dict[str, Any]


class _Problems:
    """Collects ``path: problem`` lines in the order they are found."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.lines.append(f"{path}: {problem}" if path else problem)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _header(table: Table, header: str) -> str:
    return f"[[{header}]]" if table.count is not None else f"[{header}]"


def _reject_unknown(
    table: Table, raw: Mapping[str, object], path: str, header: str, problems: _Problems
) -> None:
    allowed = [key.name for key in table.keys] + [sub.name for sub in table.tables]
    if header:
        what, where = "key", f"allowed keys in {_header(table, header)}: {', '.join(allowed)}"
    else:
        shown = ", ".join(_header(sub, sub.name) for sub in table.tables)
        what, where = "section", f"allowed sections: {shown}"
    for name in raw:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(_join(path, name), f"unknown {what}{hint}; {where}")


def _read_key(key: Key, raw: Mapping[str, object], path: str, problems: _Problems) -> Values:
    """``{name: value}`` for a valid or defaulted key, ``{}`` after reporting a problem."""
    if key.name not in raw:
        if key.default is REQUIRED:
            problems.add(path, f"missing; this key is required ({key.doc})")
            return {}
        return {key.name: _convert(key, key.default)}
    problem = _value_problem(key, raw[key.name])
    if problem is not None:
        problems.add(path, problem)
        return {}
    return {key.name: _convert(key, raw[key.name])}


def _read_table(
    table: Table, raw: Mapping[str, object], path: str, header: str, problems: _Problems
) -> Values:
    _reject_unknown(table, raw, path, header, problems)
    values: Values = {}
    for key in table.keys:
        values.update(_read_key(key, raw, _join(path, key.name), problems))
    for sub in table.tables:
        sub_path, sub_header = _join(path, sub.name), _join(header, sub.name)
        values[sub.field_name] = _read_sub(sub, raw.get(sub.name), sub_path, sub_header, problems)
    return values


def _read_sub(
    table: Table, raw: object, path: str, header: str, problems: _Problems
) -> Values | list[Values] | None:
    if table.count is not None:
        return _read_array(table, raw, path, header, problems)
    if raw is None and table.optional:
        return None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a table ({_header(table, header)}), got {_describe(raw)}")
        return {}
    return _read_table(table, raw, path, header, problems)


def _read_array(
    table: Table, raw: object, path: str, header: str, problems: _Problems
) -> list[Values]:
    items = [] if raw is None else raw
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        shown = _header(table, header)
        problems.add(path, f"expected an array of tables ({shown}), got {_describe(raw)}")
        return []
    assert table.count is not None
    low, high = table.count
    if not low <= len(items) <= high:
        problems.add(path, f"{len(items)} [[{header}]] given; allowed {low}..{high}")
    return [
        _read_table(table, item, f"{path}[{number}]", header, problems)
        for number, item in enumerate(items, 1)
    ]


# --- checks across keys ------------------------------------------------------------------------


# The starter configuration (examples/raspberry-pi.toml) carries these, so that a charger does
# not start until someone has made its file real. RFC 2606 reserves the example domains.
_EXAMPLE_DOMAINS: Final = ("example.com", "example.net", "example.org")
_PASSWORD_PLACEHOLDER: Final = "REPLACE"


def _check_placeholders(csms: Values, problems: _Problems) -> None:
    host = (urlsplit(csms.get("url") or "").hostname or "").lower()
    if any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS):
        problems.add("csms.url", f"{_show(csms['url'])} is still the example; set your "
                     "CSMS's URL")
    if (csms.get("password") or "").startswith(_PASSWORD_PLACEHOLDER):
        problems.add("csms.password", "is still the starter placeholder; set the "
                     "AuthorizationKey your CSMS gave this charger")


def _check_reconnect(csms: Values, problems: _Problems) -> None:
    low, high = csms.get("reconnect_min"), csms.get("reconnect_max")
    if low is not None and high is not None and low > high:
        problems.add("csms.reconnect_min", f"{_show(low)} is greater than csms.reconnect_max "
                     f"({_show(high)}); the delay grows from min to max")


def _check_buses(buses: list[Values], problems: _Problems) -> None:
    first_use: dict[str, str] = {}
    for number, bus in enumerate(buses, 1):
        path = f"bus[{number}]"
        name = bus.get("name")
        if name in first_use:
            problems.add(f"{path}.name", f"{_show(name)} is already used by {first_use[name]}; "
                         "bus names must be unique")
        elif name is not None:
            first_use[name] = path
        needed = {"rtu": "port", "tcp": "host"}.get(bus.get("type", ""))
        if needed is not None and needed in bus and bus[needed] is None:
            problems.add(f"{path}.{needed}", f"missing; required when type = {bus['type']!r}")


def _check_connector_ids(connectors: list[Values], problems: _Problems) -> None:
    for number, connector in enumerate(connectors, 1):
        given = connector.get("id")
        if given is not None and given != number:
            problems.add(f"connector[{number}].id", f"{given} is out of order; connector ids "
                         f"must be 1..N in file order, so this one must be {number}")


def _device_uses(connectors: list[Values], *roles: str) -> list[tuple[str, Values]]:
    """``(path, values)`` of each valid ``roles`` sub-table, connector by connector."""
    return [
        (f"connector[{number}].{role}", connector[role])
        for number, connector in enumerate(connectors, 1)
        for role in roles
        if isinstance(connector.get(role), dict)
    ]


def _check_bus_references(
    connectors: list[Values], buses: list[Values], problems: _Problems
) -> None:
    names = list(dict.fromkeys(bus["name"] for bus in buses if "name" in bus))
    defined = f"defined buses: {', '.join(names)}" if names else "no [[bus]] is defined"
    for path, device in _device_uses(connectors, "pilot", "meter"):
        if device.get("bus") is not None and device["bus"] not in names:
            problems.add(f"{path}.bus", f"{_show(device['bus'])} is not a defined bus; {defined}")


_PIN_KEYS: Final = {
    "contactor": ("pin", "feedback_pin"),
    "lock": ("pin", "unlock_pin", "feedback_pin"),
    "rcd": ("pin",),
    "tamper": ("pin",),
    "phase_switch": ("pin", "feedback_pin"),
    "indicator": ("led_pin", "red_pin", "green_pin", "blue_pin", "buzzer_pin"),
}


def _pin_uses(values: Values) -> list[tuple[str, Values, str]]:
    """``(path, table values, key)`` of every GPIO key, connectors first, then the station's."""
    tables = _device_uses(values["connectors"], "contactor", "lock", "rcd", "phase_switch")
    tables += [(name, values[name]) for name in ("rcd", "indicator", "tamper")
               if isinstance(values.get(name), dict)]
    return [(path, table, key) for path, table in tables
            for key in _PIN_KEYS[path.rpartition(".")[2]]]


def _check_pins(values: Values, problems: _Problems) -> None:
    first_use: dict[int, str] = {}
    for path, table, name in _pin_uses(values):
        pin = table.get(name)
        if pin is None:
            continue
        if pin in first_use:
            problems.add(f"{path}.{name}", f"GPIO{pin} is already used by "
                         f"{first_use[pin]}; each GPIO pin may have one job only")
        else:
            first_use[pin] = f"{path}.{name}"


_THRESHOLDS: Final = ("threshold_a_b", "threshold_b_c", "threshold_c_d", "threshold_d_e",
                      "threshold_e_f")


def _check_pilots(connectors: list[Values], problems: _Problems) -> None:
    """evse-board needs a bus; pwm needs falling thresholds, a sane ADC span and its own PWM
    channel and ADC input."""
    pwm_uses: dict[tuple[str, tuple[int, ...]], str] = {}
    for path, pilot in _device_uses(connectors, "pilot"):
        if pilot.get("driver") == "evse-board" and "bus" in pilot and pilot["bus"] is None:
            problems.add(f"{path}.bus", "missing; required when driver = 'evse-board'")
        if pilot.get("driver") != "pwm":
            continue
        _check_thresholds(path, pilot, problems)
        low, high = pilot.get("adc_low_v"), pilot.get("adc_high_v")
        if low is not None and high is not None and not high > low:
            problems.add(f"{path}.adc_high_v", f"{_show(high)} must be above adc_low_v "
                         f"({_show(low)})")
        for what, keys in (("PWM channel", ("pwm_chip", "pwm_channel")),
                           ("ADC input", ("adc_port", "adc_device", "adc_channel"))):
            if not all(key in pilot for key in keys):
                continue
            use = (what, tuple(pilot[key] for key in keys))
            if use in pwm_uses:
                problems.add(f"{path}.{keys[-1]}", f"this {what} is already used by "
                             f"{pwm_uses[use]}; each pilot needs its own")
            else:
                pwm_uses[use] = path


def _check_thresholds(path: str, pilot: Values, problems: _Problems) -> None:
    given = [(key, pilot[key]) for key in _THRESHOLDS if key in pilot]
    if len(given) < len(_THRESHOLDS):
        return
    for (upper_key, upper), (lower_key, lower) in pairwise(given):
        if not upper > lower:
            problems.add(f"{path}.{lower_key}", f"{_show(lower)} must be below {upper_key} "
                         f"({_show(upper)}); the thresholds fall from A to F")
            return
    gap = min(upper - lower for (_, upper), (_, lower) in pairwise(given))
    hysteresis = pilot.get("hysteresis")
    if hysteresis is not None and not hysteresis < gap / 2:
        problems.add(f"{path}.hysteresis", f"{_show(hysteresis)} is too large; allowed below "
                     f"half the smallest threshold gap ({_number(gap / 2)} V)")


def _check_phase_switches(connectors: list[Values], problems: _Problems) -> None:
    """A phase relay switches L2 and L3: the connector must have them."""
    for number, connector in enumerate(connectors, 1):
        if isinstance(connector.get("phase_switch"), dict) and connector.get("phases") == 1:
            problems.add(f"connector[{number}].phase_switch", "a phase switch needs a "
                         "connector wired for 3 phases (phases = 3)")


def _check_locks(connectors: list[Values], problems: _Problems) -> None:
    for path, lock in _device_uses(connectors, "lock"):
        pulse, timeout = lock.get("pulse"), lock.get("timeout")
        if pulse is not None and timeout is not None and pulse > timeout:
            problems.add(f"{path}.timeout", f"{_show(timeout)} is shorter than pulse "
                         f"({_show(pulse)}); the feedback is checked after the pulse")


def _check_indicator(indicator: object, problems: _Problems) -> None:
    if not isinstance(indicator, dict):
        return
    rgb = [indicator.get(key) for key in ("red_pin", "green_pin", "blue_pin")]
    if any(pin is not None for pin in rgb) and any(pin is None for pin in rgb):
        problems.add("indicator.red_pin", "an RGB LED needs red_pin, green_pin and blue_pin "
                     "all set (or none)")


def _check_modbus_addresses(connectors: list[Values], problems: _Problems) -> None:
    first_use: dict[tuple[str, int], str] = {}
    for path, device in _device_uses(connectors, "pilot", "meter"):
        if device.get("bus") is None or "device_id" not in device:
            continue
        if device.get("driver") == "pwm":
            continue  # a PWM pilot is on no bus
        address = (device["bus"], device["device_id"])
        if address in first_use:
            problems.add(f"{path}.device_id", f"device {address[1]} on bus {address[0]!r} is "
                         f"already used by {first_use[address]}; give each device on a bus "
                         "its own Modbus address")
        else:
            first_use[address] = f"{path}.device_id"


def _check_serial_ports(values: Values, problems: _Problems) -> None:
    uses = [(f"bus[{n}].port", bus.get("port")) for n, bus in enumerate(values["buses"], 1)]
    reader = values["reader"]
    if reader.get("driver", "none") != "none":
        uses.append(("reader.port", reader.get("port")))
        if "port" in reader and reader["port"] is None:
            problems.add("reader.port", f"missing; required when driver = {reader['driver']!r}")
    first_use: dict[str, str] = {}
    for path, port in uses:
        if port is not None and port in first_use:
            problems.add(path, f"{_show(port)} is already used by {first_use[port]}")
        elif port is not None:
            first_use[port] = path


def _check_security(csms: Values, problems: _Problems) -> None:
    profile = csms.get("security_profile")
    if profile == 1 and not csms.get("allow_unencrypted"):
        problems.add("csms.security_profile", "1 sends the password unencrypted; set "
                     "csms.allow_unencrypted = true to allow it, or use 2 or 3")
    if profile in (1, 2) and not csms.get("password"):
        problems.add("csms.password", f"missing; required when csms.security_profile = {profile}")


def _check_across(values: Values, problems: _Problems) -> None:
    connectors, buses = values["connectors"], values["buses"]
    _check_placeholders(values["csms"], problems)
    _check_reconnect(values["csms"], problems)
    _check_security(values["csms"], problems)
    _check_buses(buses, problems)
    _check_connector_ids(connectors, problems)
    _check_bus_references(connectors, buses, problems)
    _check_pins(values, problems)
    _check_pilots(connectors, problems)
    _check_locks(connectors, problems)
    _check_phase_switches(connectors, problems)
    _check_indicator(values.get("indicator"), problems)
    _check_modbus_addresses(connectors, problems)
    _check_serial_ports(values, problems)
    _check_api(values, problems)
    _check_mqtt(values.get("mqtt"), problems)


def _check_mqtt(mqtt: object, problems: _Problems) -> None:
    if not isinstance(mqtt, dict):
        return
    if mqtt.get("password") is not None and mqtt.get("password_file") is not None:
        problems.add("mqtt.password_file", "give mqtt.password or mqtt.password_file, not both")
    secret = mqtt.get("password") is not None or mqtt.get("password_file") is not None
    if secret and mqtt.get("username") is None:
        problems.add("mqtt.username", "missing; required when a password is given")
    url = mqtt.get("url")
    if (mqtt.get("ca_file") is not None and isinstance(url, str)
            and not url.startswith("mqtts://")):
        problems.add("mqtt.ca_file", "is only used with an mqtts:// URL; use mqtts:// or "
                     "leave ca_file out")


def _check_api(values: Values, problems: _Problems) -> None:
    api = values.get("api")
    if api is not None and not api.get("tokens") and api.get("tokens_file") is None:
        problems.add("api", "no token: give [[api.token]] (scope, secret) or api.tokens_file; "
                     "every request needs a bearer token")
    if (api is not None and api.get("bench_url") is not None
            and values["gpio"].get("pin_factory") != "evsim"):
        problems.add("api.bench_url", "only for a simulated charger (gpio.pin_factory = "
                     "\"evsim\"): a real charger has no bench to control")
    seen: set[str] = set()
    for number, connector in enumerate(values["connectors"], 1):
        evse_id = connector.get("evse_id")
        if evse_id is not None and evse_id.lower() in seen:
            problems.add(f"connector[{number}].evse_id", f"{evse_id!r} is used twice; "
                         "each connector needs its own")
        if evse_id is not None:
            seen.add(evse_id.lower())


# --- building the result -----------------------------------------------------------------------


def _build(table: Table, values: Values) -> object:
    arguments = {key.name: values[key.name] for key in table.keys}
    for sub in table.tables:
        raw = values[sub.field_name]
        if raw is None:
            arguments[sub.field_name] = None  # an optional table left out
        elif sub.count is None:
            arguments[sub.field_name] = _build(sub, raw)
        else:
            arguments[sub.field_name] = tuple(_build(sub, item) for item in raw)
    return table.target(**arguments)


# --- public entry points -----------------------------------------------------------------------


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate TOML ``text``; ``source`` names it in messages. Raises :class:`ConfigError`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"invalid TOML: {exc}"], source) from None
    problems = _Problems()
    values = _read_table(_ROOT, raw, "", "", problems)
    _check_across(values, problems)
    if problems.lines:
        raise ConfigError(problems.lines, source)
    config = _build(_ROOT, values)
    assert isinstance(config, Config)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate the UTF-8 TOML file at ``path``. Raises :class:`ConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc.reason} at byte {exc.start}"], source) from None
    return _relative_to(parse_config(text, source), Path(path).absolute().parent)


def _relative_to(config: Config, base: Path) -> Config:
    """``config`` with a relative ``charger.state_dir`` taken as relative to ``base``.

    :func:`load_config` passes the file's directory, so the agent, ``status`` and ``log`` find
    the same directory wherever they are started from.
    """
    mqtt = config.mqtt
    if mqtt is not None:
        files = {name: getattr(mqtt, name) for name in ("password_file", "ca_file")}
        config = dataclasses.replace(config, mqtt=dataclasses.replace(mqtt, **{
            name: base / path for name, path in files.items()
            if path is not None and not path.is_absolute()}))
    api = config.api
    if api is not None and api.tokens_file is not None and not api.tokens_file.is_absolute():
        config = dataclasses.replace(config, api=dataclasses.replace(
            api, tokens_file=base / api.tokens_file))
    state_dir = config.charger.state_dir
    if state_dir.is_absolute():
        return config
    charger = dataclasses.replace(config.charger, state_dir=base / state_dir)
    return dataclasses.replace(config, charger=charger)


# --- documentation -----------------------------------------------------------------------------


def _doc_default(key: Key) -> str:
    if key.default is REQUIRED:
        return "**required**"
    if key.default is None:
        return "unset"
    if isinstance(key.default, str):
        return f'`"{key.default}"`'
    return f"`{_show(key.default)}`"


def _doc_allowed(key: Key) -> str:
    parts = []
    if key.choices:
        parts.append(", ".join(f"`{_plain(choice)}`" for choice in key.choices))
    if key.span is not None:
        low, high = (_number(bound) for bound in key.span)
        unit = "characters" if key.kind is str else key.unit
        parts.append(f"{low}..{high} {unit}".rstrip())
    if key.rule:
        parts.append(key.rule)
    if key.kind is bool:
        parts.append("`true`, `false`")
    return "; ".join(parts)


def _doc_rows(table: Table, path: str) -> list[str]:
    rows = []
    for key in table.keys:
        cells = (f"`{_join(path, key.name)}`", _KIND_NAMES[key.kind], _doc_default(key),
                 _doc_allowed(key), key.doc)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    for sub in table.tables:
        sub_path = _join(path, sub.name) + ("[]" if sub.count is not None else "")
        rows.extend(_doc_rows(sub, sub_path))
    return rows


def describe_schema() -> str:
    """Every key as a Markdown table: key, type, default, allowed values, description.

    ``bus[]`` and ``connector[]`` are arrays of tables (``[[bus]]``, 0..8 entries;
    ``[[connector]]``, 1..8 entries).
    """
    head = ["| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(head + _doc_rows(_ROOT, "")) + "\n"


def _ocpp_range(spec: KeySpec) -> str:
    if spec.kind is bool:
        return "bool"
    if spec.kind is str:
        if spec.csl_items is None:
            return "text"
        if spec.csl_items <= set(MEASURANDS):
            return "measurand list"
        return "list of " + ", ".join(sorted(spec.csl_items))
    if spec.minimum is None or spec.maximum is None:
        return ""
    return f"{spec.minimum}..{spec.maximum} {spec.unit}".rstrip()


def describe_ocpp_keys() -> str:
    """The OCPP configuration keys as the README's Markdown table: access, default, range.

    The default is what a charger without ``[ocpp]`` entries reports: the file's seed where
    the key has one (:data:`_OCPP`), otherwise the key's own default.
    """
    seeds = {key.ocpp_key: _ocpp_value(key.default) for key in _OCPP.keys}
    rows = ["| key | access | default | range |", "| --- | --- | --- | --- |"]
    for spec in sorted(core_keys(1), key=lambda spec: spec.name.lower()):
        if spec.name == "NumberOfConnectors":
            default = "connectors in the file"
        else:
            default = seeds.get(spec.name, _ocpp_value(spec.default)) or "empty"
        access = "R" if spec.readonly else "RW"
        row = f"| {spec.name} | {access} | {default} | {_ocpp_range(spec)} |"
        rows.append(row.replace("  |", " |"))
    return "\n".join(rows) + "\n"
