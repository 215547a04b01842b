"""The one module that speaks to the MQTT library (aiomqtt, over paho-mqtt).

:class:`Broker` is what the rest of :mod:`agent.mqtt` sees: connect with a last will,
publish, subscribe, and read messages as ``(topic, payload bytes)``. Every library failure
comes out as :class:`BrokerError`, so the callers catch one type and never a paho one.

aiomqtt runs paho's blocking ``connect`` in an executor thread and the socket on the event
loop (aiomqtt ``Client.__aenter__``), so a broker that is slow or away never blocks the loop.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

CONNECT_TIMEOUT = 10.0
"""Seconds for the TCP/TLS connection and the CONNACK, and for each QoS 1 acknowledgement."""
INCOMING_LIMIT = 64
"""Commands waiting to be read; more are dropped by the library (a flood never grows memory)."""
OUTGOING_LIMIT = 256
"""Publications waiting for the socket; more are dropped (paho's queue stays bounded)."""


class BrokerError(Exception):
    """The broker cannot be reached, refused us, or the connection broke."""


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    will_topic: str
    will_payload: bytes
    keepalive: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    # Verified against the configured CA (or the system's), hostname checked: TLS 1.2+.
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file
                                         else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Broker:
    """One live connection; build it with :func:`connect`."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                      qos: int = 1) -> None:
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain,
                                       timeout=CONNECT_TIMEOUT)
        except aiomqtt.MqttError as error:
            raise BrokerError(str(error)) from error

    async def subscribe(self, topic: str) -> None:
        try:
            await self._client.subscribe(topic, qos=1, timeout=CONNECT_TIMEOUT)
        except aiomqtt.MqttError as error:
            raise BrokerError(str(error)) from error

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every message of the subscriptions, until the connection breaks (BrokerError)."""
        try:
            async for message in self._client.messages:
                yield message.topic.value, _as_bytes(message.payload)
        except aiomqtt.MqttError as error:
            raise BrokerError(str(error)) from error


def _as_bytes(payload: object) -> bytes:
    """paho hands payloads as bytes, or str/int/float/None for ones it built itself."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


@asynccontextmanager
async def connect(settings: BrokerSettings) -> AsyncIterator[Broker]:
    """Connected for the ``async with`` block; the broker publishes the will (retained) if
    the connection ends any other way than a clean disconnect. Raises BrokerError."""
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=settings.client_id, keepalive=settings.keepalive, timeout=CONNECT_TIMEOUT,
        will=aiomqtt.Will(settings.will_topic, settings.will_payload, qos=1, retain=True),
        tls_context=_tls_context(settings), clean_session=True,
        max_queued_incoming_messages=INCOMING_LIMIT,
        max_queued_outgoing_messages=OUTGOING_LIMIT)
    try:
        await client.__aenter__()
    except (aiomqtt.MqttError, OSError, ssl.SSLError) as error:
        raise BrokerError(str(error) or type(error).__name__) from error
    try:
        yield Broker(client)
    finally:
        try:
            await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, OSError):
            pass  # the connection was already gone
