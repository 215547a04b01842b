"""Build the MQTT service from ``[mqtt]``: the broker password (file checked like every
secret file of the agent), the topics and the discovery's view of the charger.

The MQTT library is imported by :func:`build` only: an agent without ``[mqtt]`` never loads
it (its memory is in docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.config import Config, MqttConfig
from agent.security.files import read_secret_file

if TYPE_CHECKING:
    from agent.api.service import SessionService
    from agent.mqtt.service import MqttService


class MqttConfigError(ValueError):
    """``mqtt.password_file`` is unreadable, readable by others, or empty (named)."""


def password(config: MqttConfig) -> str | None:
    """``mqtt.password``, or the first line of ``mqtt.password_file`` (mode 600 or 400)."""
    path = config.password_file
    if path is None:
        return config.password
    text = read_secret_file(path, "mqtt.password_file", MqttConfigError)
    secret = text.strip()
    if not secret:
        raise MqttConfigError(f"mqtt.password_file: {path} is empty")
    return secret


def secrets(config: Config) -> tuple[str, ...]:
    """The broker password, for the log scrubbers; nothing when it cannot be read."""
    if config.mqtt is None:
        return ()
    try:
        secret = password(config.mqtt)
    except MqttConfigError:
        return ()
    return (secret,) if secret else ()


def build(config: Config, snapshot: Callable[[], dict[str, Any]],
          sessions: SessionService) -> MqttService | None:
    """The service, or None without ``[mqtt]``. Raises MqttConfigError."""
    mqtt = config.mqtt
    if mqtt is None:
        return None
    from agent.mqtt.client import BrokerSettings
    from agent.mqtt.discovery import Station
    from agent.mqtt.service import MqttService

    prefix = config.mqtt_prefix
    settings = BrokerSettings(
        host=mqtt.host, port=mqtt.port,
        client_id=mqtt.client_id or f"evse-agent-{config.charger.id}",
        will_topic=f"{prefix}/availability", will_payload=b"offline",
        keepalive=mqtt.keepalive, username=mqtt.username, password=password(mqtt),
        tls=mqtt.tls, ca_file=mqtt.ca_file)
    station = Station(
        charger_id=config.charger.id, vendor=config.charger.vendor, model=config.charger.model,
        version=__version__, serial_number=config.charger.serial_number, prefix=prefix,
        discovery_prefix=mqtt.discovery_prefix,
        max_current={c.id: float(c.max_current) for c in config.connectors},
        phase_switch=frozenset(c.id for c in config.connectors if c.phase_switch is not None))
    return MqttService(settings, station, mqtt.tokens, discovery=mqtt.discovery,
                       snapshot=snapshot, sessions=sessions)
