"""The WebSocket link to the CSMS: connect, keep alive, reconnect, and carry calls.

One :class:`Link` keeps at most one session open. It reconnects with exponential back-off
and jitter for as long as the agent runs, detects a dead peer with WebSocket pings, and
resolves a call in flight when the socket dies (:class:`LinkLost`) instead of leaving it to
the response timeout. The link state is reported through ``on_state`` and logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from agent.core import messages as msg
from agent.csms.adapter import Adapter, CommandHandler, Refused, Session
from agent.csms.errors import LinkLost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSettings:
    url: str  # ws:// or wss:// base URL; the charge point id is appended
    charge_point_id: str
    password: str | None = None
    call_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    ping_interval: float = 30.0  # 0 = off
    use_proxy: bool = False

    @property
    def endpoint(self) -> str:
        return f"{self.url.rstrip('/')}/{self.charge_point_id}"


def basic_auth_header(charge_point_id: str, password: str) -> dict[str, str]:
    """OCPP 1.6 security profile 1/2: HTTP Basic with the charge point id as user."""
    token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class ConnectionPolicy(Protocol):
    """Where and how each connection attempt goes (agent.security.profile: the security
    profile's URL scheme, TLS context and Basic auth), and what came of it."""

    def endpoint(self) -> str: ...
    def connect_options(self) -> dict[str, Any]: ...  # may raise OSError
    def connected(self) -> None: ...
    def failed(self, error: BaseException) -> None: ...


class Link:
    def __init__(self, settings: LinkSettings, adapter: Adapter, commands: CommandHandler,
                 on_state: Callable[[bool], None],
                 replied: Callable[[], None] = lambda: None,
                 ping_interval: Callable[[], float] | None = None,
                 policy: ConnectionPolicy | None = None,
                 refused: Refused | None = None,
                 sent: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        self._sent = sent  # after each frame written to the CSMS (the outbox's deferred commit)
        self._refused = refused
        self._adapter = adapter
        self._policy = policy
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Future[None] | None = None
        # WebSocketPingInterval as the CSMS last set it; read at each connection.
        self._ping_interval = ping_interval or (lambda: settings.ping_interval)
        self._commands = commands
        self._on_state = on_state
        self._replied = replied
        self._session: Session | None = None
        self._closed: asyncio.Event | None = None

    @property
    def up(self) -> bool:
        return self._session is not None

    async def run(self) -> None:
        """Connect and reconnect forever; cancel the task to stop."""
        delay = self._settings.reconnect_min
        while True:
            try:
                await self._session_once()
                delay = self._settings.reconnect_min
            except (OSError, InvalidHandshake, WebSocketException, TimeoutError) as error:
                log.warning("link: cannot reach %s: %s", self._endpoint(), error)
                if self._policy is not None:
                    self._policy.failed(error)
            pause = delay * random.uniform(0.5, 1.0)  # jitter: chargers of a site spread out
            log.info("link: reconnecting in %.1fs", pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, self._settings.reconnect_max)

    def _endpoint(self) -> str:
        return self._policy.endpoint() if self._policy else self._settings.endpoint

    def reconnect(self) -> None:
        """Close the connection (if any); the link connects again with what the policy
        says then (new credentials, a new CSMS root)."""
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close())

    async def _session_once(self) -> None:
        async with connect(self._endpoint(), **self._connect_options()) as ws:
            if ws.subprotocol != self._adapter.subprotocol:
                log.error("link: CSMS did not accept subprotocol %s", self._adapter.subprotocol)
                return
            if self._policy is not None:
                self._policy.connected()
            self._ws = ws
            try:
                await self._serve(ws)
            finally:
                self._ws = None

    def _connect_options(self) -> dict[str, Any]:
        s = self._settings
        # A pong missing for one interval closes the socket: a dead peer is found within
        # two intervals (issue: the link stays alive).
        ping = self._ping_interval() or None
        options: dict[str, Any] = {
            "subprotocols": [self._adapter.subprotocol],
            "open_timeout": 10,
            "ping_interval": ping,
            "ping_timeout": ping,
            "close_timeout": 5,
            "max_size": 4 << 20,  # larger frames are refused with a CALLERROR, not a close
            "proxy": True if s.use_proxy else None,
        }
        if self._policy is not None:
            return options | self._policy.connect_options()
        if s.password:
            options["additional_headers"] = basic_auth_header(s.charge_point_id, s.password)
        if s.endpoint.startswith("wss://"):
            options["ssl"] = ssl.create_default_context()
        return options

    async def _serve(self, ws: ClientConnection) -> None:
        session = self._adapter.open(self._settings.charge_point_id,
                                     _Sending(ws, self._sent), self._commands,
                                     self._settings.call_timeout, self._replied,
                                     self._refused)
        self._session, self._closed = session, asyncio.Event()
        log.info("link: connected to %s", self._endpoint())
        self._on_state(True)
        try:
            await session.start()
        except WebSocketException as error:
            log.warning("link: connection lost: %s", error)
        finally:
            self._session = None
            self._closed.set()
            self._on_state(False)

    async def send(self, ref: str, req: msg.OutboundReq,
                   transaction_id: int | None) -> msg.InboundConf:
        """Make one call; raises LinkLost if the link is down or drops before the answer."""
        session, closed = self._session, self._closed
        if session is None or closed is None:
            raise LinkLost("not connected")
        call = asyncio.ensure_future(session.send(req, ref, transaction_id))
        dropped = asyncio.ensure_future(closed.wait())
        try:
            await asyncio.wait({call, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
        if not call.done():
            call.cancel()
            raise LinkLost("connection lost during the call")
        try:
            return call.result()
        except WebSocketException as error:
            raise LinkLost(str(error)) from error


class _Sending:
    """The WebSocket as the session sees it: ``sent`` runs after each frame has been written."""

    def __init__(self, ws: ClientConnection, sent: Callable[[], None]) -> None:
        self._ws = ws
        self._sent = sent

    async def send(self, message: str) -> None:
        await self._ws.send(message)
        try:
            self._sent()
        except Exception:  # a bug in the hook must not fail the call that was sent
            log.exception("link: after-send hook failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)
