"""What the strict CSMSes of every OCPP version share: the loopback server, the frame record
and the waiting and calling helpers for tests.

:class:`CsmsServer` is the version-free part; :mod:`evsim.csms` (OCPP 1.6J) and
:mod:`evsim.csms201` (OCPP 2.0.1) add the session class (the ``ocpp`` library's central
side with its ``@on`` handlers), the validation of each frame and the books they keep.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Generic, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Frame:
    direction: str  # "in" (charger -> CSMS) or "out"
    raw: str
    at: float
    message_type: int = 0
    action: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Wraps a server connection so every frame in and out is recorded and validated."""

    def __init__(self, ws: ServerConnection, csms: CsmsServer[Any]) -> None:
        self._ws = ws
        self._csms = csms

    async def recv(self) -> str:
        raw = await self._ws.recv()
        text = raw if isinstance(raw, str) else raw.decode()
        self._csms.record("in", text)
        return text

    async def send(self, message: str) -> None:
        self._csms.record("out", message)
        await self._ws.send(message)


def call_action(raw: str) -> str | None:
    """The action of a CALL frame, None for anything else."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) > 2 and parsed[0] == 2:
        return str(parsed[2])
    return None


Session = TypeVar("Session")


class CsmsServer(Generic[Session]):
    """The server. ``async with Csms() as csms:`` listens on ``csms.url``.

    A subclass names its ``subprotocol``, builds the session for each connection
    (:meth:`open_session`) and checks each frame (:meth:`validate`).
    """

    subprotocol = ""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp",
                 password: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.path = host, port, path
        # With a password, a connection without the right HTTP Basic credentials gets 401.
        self.password = password
        self.ssl_context = ssl_context  # wss:// (set before come_back() to change the cert)
        self.authorizations_seen: list[str | None] = []  # each upgrade's Authorization header
        self.peer_certificates: list[Any] = []  # the client certificate of each connection
        self.tls_sessions: list[tuple[str, str] | None] = []  # (version, cipher) of each
        self.frames: list[Frame] = []
        self.violations: list[str] = []  # what is wrong with frames from the charger
        self.sent_violations: list[str] = []  # with frames to it (where a version checks)
        self.on_frame: Callable[[Frame], None] | None = None
        self.boot_answers: list[tuple[str, int]] = []  # consumed first; then Accepted
        self.heartbeat_interval = 300
        self._background: set[asyncio.Task[None]] = set()
        self.session: Session | None = None
        self.connections = 0
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    def open_session(self, charge_point_id: str, connection: Recorder) -> Session:
        raise NotImplementedError

    def validate(self, direction: str, raw: str, frame: Frame) -> None:
        """Record in :attr:`violations` what is wrong with ``raw``."""

    def next_boot_answer(self) -> tuple[str, int]:
        """BootNotification's (status, interval): the next of ``boot_answers``, or Accepted."""
        if self.boot_answers:
            return self.boot_answers.pop(0)
        return "Accepted", self.heartbeat_interval

    # --- serving ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}{self.path}"

    async def __aenter__(self) -> Self:
        await self._listen()
        self.port = self._server.sockets[0].getsockname()[1] if self._server else self.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:  # None while down (go_down)
            self._server.close()
            await self._server.wait_closed()

    async def _listen(self) -> None:
        self._server = await serve(self._handler, self.host, self.port, ssl=self.ssl_context,
                                   process_request=self._check_auth,
                                   subprotocols=[self.subprotocol])  # type: ignore[list-item]

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        self.authorizations_seen.append(header)
        if self.password is None:
            return None
        charge_point_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        wanted = base64.b64encode(f"{charge_point_id}:{self.password}".encode()).decode()
        if header != f"Basic {wanted}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` beside the session (late answers); cancelled on exit."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def go_down(self) -> None:
        """An outage: stop listening and drop the charger's connection. The books stay."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def come_back(self) -> None:
        """End the outage: listen again on the same port."""
        if self._server is None:
            await self._listen()

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        charge_point_id = path.rstrip("/").rsplit("/", 1)[-1]
        if ws.subprotocol != self.subprotocol:
            self.violations.append(
                f"connection without subprotocol {self.subprotocol} ({ws.subprotocol})")
        session = self.open_session(charge_point_id, Recorder(ws, self))
        self.session = session
        self.peer_certificates.append(ws.transport.get_extra_info("peercert"))
        tls = ws.transport.get_extra_info("ssl_object")
        self.tls_sessions.append((tls.version(), tls.cipher()[0]) if tls else None)
        self.connections += 1
        await self._notify()
        try:
            await session.start()  # type: ignore[attr-defined]
        except ConnectionClosed:
            pass
        finally:
            self.session = None
            await self._notify()

    # --- recording ------------------------------------------------------------------------

    def record(self, direction: str, raw: str) -> None:
        frame = Frame(direction, raw, asyncio.get_running_loop().time())
        try:
            parsed = json.loads(raw)
            frame.message_type = parsed[0]
            if parsed[0] == 2:
                frame.action, frame.payload = parsed[2], parsed[3]
            elif parsed[0] == 3:
                frame.payload = parsed[2]
        except (ValueError, IndexError, KeyError, TypeError):
            pass
        self.validate(direction, raw, frame)
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        asyncio.get_running_loop().create_task(self._notify())

    def action_of(self, unique_id: str, direction: str = "out") -> str:
        """The action of the last CALL ``unique_id`` sent in ``direction``."""
        for frame in reversed(self.frames):
            if frame.direction == direction and frame.message_type == 2:
                try:
                    if json.loads(frame.raw)[1] == unique_id:
                        return frame.action
                except (ValueError, IndexError):
                    continue
        return ""

    # --- waiting and calling -------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], object], within: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy; return its value. Raises TimeoutError."""
        async def waiter() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(waiter(), within)

    async def wait_for_action(self, action: str, count: int = 1, within: float = 10.0) -> Frame:
        """Wait for the ``count``-th call ``action`` from the charger; return that frame."""
        def found() -> Frame | None:
            calls = self.calls(action)
            return calls[count - 1] if len(calls) >= count else None

        result: Frame = await self.wait_for(found, within)
        return result

    def calls(self, action: str | None = None) -> list[Frame]:
        return [f for f in self.frames
                if f.direction == "in" and f.message_type == 2
                and (action is None or f.action == action)]

    async def call(self, payload: Any) -> Any:
        """Send a call to the connected charger and return its result (CallErrors raise)."""
        session = await self.wait_for(lambda: self.session)
        return await session.call(payload, suppress=False)

    async def send_raw(self, text: str) -> None:
        """Send any text as a frame, to test how the charger copes with garbage."""
        session = await self.wait_for(lambda: self.session)
        await session._connection.send(text)

    def call_errors(self) -> list[list[Any]]:
        """Every CALLERROR the charger sent, parsed."""
        return [json.loads(f.raw) for f in self.frames
                if f.direction == "in" and f.message_type == 4]
