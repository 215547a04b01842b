"""MQTT on the event loop: state out, events out, commands in, never in charging's way.

:class:`MqttService` follows the core (a ``Runtime`` listener) and the session records (a
``SessionService`` listener). Both listeners only mark the state dirty or append an event
to a small bounded queue: O(1), no I/O, nothing that can raise into the core. One task
owns the connection:

- connect with a retained last will (``availability`` = ``offline``), publish ``online``,
  the discovery payloads and every state topic (retained), subscribe to the commands;
- publish the state topics whose payload changed, at most every :data:`COALESCE` seconds;
- on any failure: log it, drop the queued events (nothing important is queued on MQTT: the
  state is retained and republished in full on the next connection; the sessions and the
  authorization log keep the history), wait with exponential back-off and jitter, retry.

Commands run as their own tasks (a start waits for the token's decision) and answer on
``connector/<n>/result`` with the HTTP API's error contract (docs/home-assistant.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from agent import clock
from agent.api.service import SessionService, UnexpectedError
from agent.core import effects as fx
from agent.core import events as ev
from agent.local_limit import LimitError
from agent.mqtt import topics
from agent.mqtt.client import Broker, BrokerError, BrokerSettings, connect
from agent.mqtt.discovery import Station, payloads
from agent.sessions import ACTIVE, Session

log = logging.getLogger(__name__)

RECONNECT_MIN = 1.0
RECONNECT_MAX = 60.0
COALESCE = 0.2
"""Seconds between two rounds of state publications: a burst of core events is one round."""
EVENT_QUEUE = 100
"""Events waiting for the next round; the oldest go first when more arrive."""
CLOSE_TIMEOUT = 2.0


def backoff(attempt: int, low: float = RECONNECT_MIN, high: float = RECONNECT_MAX) -> float:
    """The delay before reconnect ``attempt`` (1, 2, ...): doubling from ``low`` up to
    ``high``, with full jitter on the upper half so that chargers restarted together (a
    power cut on a site) do not all reconnect at the same instant."""
    ceiling = min(high, low * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class MqttService:
    """``attach()`` before the core starts, ``await run()`` as a task, ``await close()``."""

    def __init__(self, settings: BrokerSettings, station: Station, tokens: str, *,
                 discovery: bool, snapshot: Callable[[], dict[str, Any]],
                 sessions: SessionService) -> None:
        self.settings = settings
        self.station = station
        self.prefix = station.prefix
        self.tokens = tokens
        self.discovery = discovery
        self.snapshot = snapshot
        self.sessions = sessions
        self.connected = False
        self.connections = 0  # successful connections so far
        self.dropped = 0  # events dropped while the broker was away
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=EVENT_QUEUE)
        self._published: dict[str, str] = {}
        self._commands: set[asyncio.Task[None]] = set()
        self._broker: Broker | None = None

    # --- following the agent (on the loop, from the core's listener chain) ------------------

    def attach(self, listeners: list[Callable[[ev.Event, list[fx.Effect]], None]]) -> None:
        listeners.append(self._on_core)
        self.sessions.listeners.append(self._on_session)

    def _on_core(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        try:
            self._dirty.set()
            for effect in effects:
                if isinstance(effect, fx.AuthorizationDecided):
                    self._event("event/authorization", topics.authorization_event(
                        effect.id_tag, effect.connector_id, effect.purpose, effect.accepted,
                        effect.source, effect.status, effect.reason, clock.now().utc,
                        self.tokens))
        except Exception:  # MQTT never breaks the core's listener chain
            log.exception("mqtt: cannot follow the core")

    def _on_session(self, session: Session, event: str | None) -> None:
        try:
            self._dirty.set()
            if event is not None:
                self._event("event/session", topics.session_event(session, event, self.tokens))
        except Exception:
            log.exception("mqtt: cannot follow the sessions")

    def _event(self, topic: str, payload: dict[str, Any]) -> None:
        if not self.connected:
            self.dropped += 1  # documented: events while the broker is away are dropped
            return
        self._events.append((topic, payload))
        self._dirty.set()

    # --- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        attempt, last_error = 0, ""
        while not self._closing.is_set():
            try:
                async with connect(self.settings) as broker:
                    attempt, last_error = 0, ""
                    await self._connected(broker)
                if self._closing.is_set():
                    return  # "offline" was published, and the disconnect was clean
            except BrokerError as error:
                # A new kind of failure is a warning; the same one again only every 10th
                # attempt (a broker away for a day is ~1,500 attempts), the rest at debug.
                again = str(error) == last_error and (attempt + 1) % 10
                log.log(logging.DEBUG if again else logging.WARNING,
                        "mqtt: broker %s:%d: %s (attempt %d; charging goes on)",
                        self.settings.host, self.settings.port, error, attempt + 1)
                last_error = str(error)
            except Exception:  # an MQTT failure never crashes the agent
                log.exception("mqtt: unexpected failure; reconnecting")
            finally:
                self._gone()
            attempt += 1
            try:
                await asyncio.wait_for(self._closing.wait(), backoff(attempt))
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Publish ``offline`` and disconnect (a clean disconnect: the will is not sent)."""
        self._closing.set()
        self._dirty.set()
        for task in list(self._commands):
            task.cancel()
        await asyncio.gather(*self._commands, return_exceptions=True)

    def _gone(self) -> None:
        if self.connected and not self._closing.is_set():
            log.warning("mqtt: disconnected from %s:%d; charging goes on", self.settings.host,
                        self.settings.port)
        self.connected, self._broker = False, None
        self.dropped += len(self._events)
        self._events.clear()
        self._published.clear()  # everything is republished on the next connection

    async def _connected(self, broker: Broker) -> None:
        self._broker = broker
        await broker.publish(f"{self.prefix}/availability", "online", retain=True)
        if self.discovery:
            for topic, payload in payloads(self.station).items():
                await broker.publish(topic, json.dumps(payload), retain=True)
        await broker.subscribe(topics.command_filter(self.prefix))
        self.connected = True
        self.connections += 1
        log.info("mqtt: connected to %s:%d as %s", self.settings.host, self.settings.port,
                 self.settings.client_id)
        self._dirty.set()
        tasks = [asyncio.create_task(self._publish_loop(broker), name="mqtt publish"),
                 asyncio.create_task(self._read_commands(broker), name="mqtt commands")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # a BrokerError ends this connection
        if not self._closing.is_set():
            raise BrokerError("the broker ended the message stream")
        try:
            await asyncio.wait_for(broker.publish(f"{self.prefix}/availability", "offline",
                                                  retain=True), CLOSE_TIMEOUT)
        except (BrokerError, TimeoutError) as error:  # a broker that does not answer misses
            # the DISCONNECT too, and publishes the will when the keep-alive runs out
            log.info("mqtt: offline not published at the stop: %s", error or "timeout")

    async def _publish_loop(self, broker: Broker) -> None:
        while not self._closing.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish_state(broker)
            while self._events:
                topic, payload = self._events.popleft()
                await broker.publish(f"{self.prefix}/{topic}", json.dumps(payload))
            await asyncio.sleep(COALESCE)

    async def _publish_state(self, broker: Broker) -> None:
        snapshot = self.snapshot()
        held = {cid: self._session_on(cid) for cid in self.station.max_current}
        for topic, payload in topics.station_state(snapshot, held, self.tokens).items():
            if self._published.get(topic) != payload:
                await broker.publish(f"{self.prefix}/{topic}", payload, retain=True)
                self._published[topic] = payload

    def _session_on(self, connector_id: int) -> Session | None:
        return self.sessions.sessions.on_connector(connector_id)

    # --- commands ---------------------------------------------------------------------------

    async def _read_commands(self, broker: Broker) -> None:
        async for topic, payload in broker.messages():
            task = asyncio.create_task(self._command(broker, topic, payload))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _command(self, broker: Broker, topic: str, payload: bytes) -> None:
        try:
            command = topics.parse_command(self.prefix, topic, payload,
                                           self.station.max_current)
        except topics.BadCommand as bad:
            if bad.connector_id is not None:
                await self._answer(broker, bad.connector_id, topics.result(
                    bad.name, None, ok=False, status=400, kind="bad_request",
                    details=bad.details))
            else:
                log.warning("mqtt: ignored a command on %s: %s", topic, bad.details)
            return
        try:
            answer = await self.execute(command)
        except Exception:  # a command that fails inside the agent answers 500, never crashes
            log.exception("mqtt: command %s on connector %s failed", command.name,
                          command.connector_id)
            answer = topics.result(command.name, command.request_id, ok=False, status=500,
                                   kind="unexpected_error", details="the command failed")
        await self._answer(broker, command.connector_id, answer)

    async def _answer(self, broker: Broker, connector_id: int, answer: dict[str, Any]) -> None:
        try:
            await broker.publish(f"{self.prefix}/connector/{connector_id}/result",
                                 json.dumps(answer))
        except BrokerError as error:  # the connection went: the result is dropped
            log.warning("mqtt: result of %s not sent: %s", answer["command"], error)

    async def execute(self, command: topics.Command) -> dict[str, Any]:
        """Carry out ``command`` and return its result (``topics.result``)."""
        if command.name == "start":
            return await self._start(command)
        if command.name == "stop":
            return self._stop(command)
        if command.name == "phases":
            return self.set_phases(command)
        return self.set_local_limit(command)

    async def _start(self, command: topics.Command) -> dict[str, Any]:
        assert command.id_tag is not None
        try:
            session, error = await self.sessions.start(command.connector_id, command.id_tag)
        except UnexpectedError as failure:
            return topics.result("start", command.request_id, ok=False, status=500,
                                 kind="unexpected_error",
                                 details=f"We faced unexpected error. Code: {failure.code}")
        if error is not None:
            return topics.result("start", command.request_id, ok=False, session=session,
                                 status=error.status, kind=error.kind, details=error.details,
                                 extra=error.extra)
        return topics.result("start", command.request_id, ok=True, session=session,
                             status=201)

    def _stop(self, command: topics.Command) -> dict[str, Any]:
        session = self._to_stop(command)
        if session is None:
            return topics.result("stop", command.request_id, ok=False, status=404,
                                 kind="session_not_found",
                                 details="no session of this token on this connector"
                                 if command.id_tag or command.session_id else
                                 "no session on this connector")
        session, refused = self.sessions.stop(session)
        if refused is not None:
            return topics.result("stop", command.request_id, ok=False, session=session,
                                 status=409, kind="session_not_stoppable", details=refused)
        return topics.result("stop", command.request_id, ok=True, session=session)

    def _to_stop(self, command: topics.Command) -> Session | None:
        if command.session_id is not None:
            found = self.sessions.get(command.session_id)
            return found if found is not None and (
                found.connector_id == command.connector_id) else None
        current = self.sessions.sessions.on_connector(command.connector_id)
        if command.id_tag is None:
            return current
        tag = command.id_tag.lower()
        for session in self.sessions.sessions.sessions.values():
            if (session.connector_id == command.connector_id and session.status in ACTIVE
                    and session.id_tag.lower() == tag):
                return session
        return None

    def set_local_limit(self, command: topics.Command) -> dict[str, Any]:
        """current_limit (``amps``; None clears), pause (0 A) and resume (clears): the one
        place the local limit is set from MQTT."""
        return self._local(command, lambda: self.sessions.set_local_limit(
            command.connector_id, command.amps, "mqtt"))

    def set_phases(self, command: topics.Command) -> dict[str, Any]:
        """phases: 1 or 3 through the connector's phase relay; None (``auto``) leaves them to
        the charger again."""
        return self._local(command, lambda: self.sessions.set_phases(
            command.connector_id, command.phases, "mqtt"))

    @staticmethod
    def _local(command: topics.Command, change: Callable[[], object]) -> dict[str, Any]:
        """200, or 400 ``bad_request`` naming what the local limit refused (a connector
        without a phase relay, ...), as the HTTP API answers."""
        try:
            change()
        except LimitError as error:
            return topics.result(command.name, command.request_id, ok=False, status=400,
                                 kind="bad_request", details=str(error))
        return topics.result(command.name, command.request_id, ok=True)
