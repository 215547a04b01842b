"""A small, strict OCPP 1.6J CSMS on loopback, for the demo and the integration tests.

It is a real peer: the ``ocpp`` library on the central-system side over ``websockets``. On top
of the library's own checks it validates *every* frame the charger sends against the OCPP 1.6
JSON schemas and records each violation in :attr:`Csms.violations` (tests assert it stays
empty), keeps every frame in :attr:`Csms.frames`, and keeps the books of the transactions it
was told about in :attr:`Csms.transactions`.

Behaviour is configurable per test: boot answers, authorization answers per idTag, and calls
to the charger (``await csms.call(RemoteStartTransaction(...))``). It can also misbehave per
action, the way real backends do: answer with a CALLERROR (:attr:`Csms.error_answers`), answer
late (:attr:`Csms.answer_delays`) or never (:attr:`Csms.silent`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call, CallResult, _validate_payload, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _CentralSide
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

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


@dataclass
class TransactionRecord:
    transaction_id: int
    connector_id: int
    id_tag: str
    meter_start: int
    started: str
    meter_stop: int | None = None
    stopped: str | None = None
    reason: str | None = None
    stop_id_tag: str | None = None
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    stop_count: int = 0


class _Recorder:
    """Wraps a server connection so every frame in and out is recorded and validated."""

    def __init__(self, ws: ServerConnection, csms: Csms) -> None:
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


def _call_action(raw: str) -> str | None:
    """The action of a CALL frame, None for anything else."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) > 2 and parsed[0] == 2:
        return str(parsed[2])
    return None


class CentralSide(_CentralSide):  # type: ignore[misc]
    """The CSMS's session with one charger."""

    def __init__(self, charge_point_id: str, connection: _Recorder, csms: Csms) -> None:
        super().__init__(charge_point_id, connection, response_timeout=10)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        """Misbehave first if the test asked for it (see :class:`Csms`), else route."""
        action = _call_action(raw_msg)
        if action is None:
            await super().route_message(raw_msg)
        elif action in self.csms.silent:
            log.info("CSMS: leaving %s unanswered", action)
        elif self.csms.error_answers.get(action, 0) > 0:
            self.csms.error_answers[action] -= 1
            error = InternalError(description=f"{action} refused by the test")
            await self._send(unpack(raw_msg).create_call_error(error).to_json())
        elif self.csms.answer_delays.get(action):
            delay = self.csms.answer_delays[action].pop(0)
            self.csms.spawn(self._answer_later(raw_msg, delay))
        else:
            await super().route_message(raw_msg)

    async def _answer_later(self, raw_msg: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await super().route_message(raw_msg)
        except ConnectionClosed:
            log.info("CSMS: the late answer found the connection closed")

    @on(Action.boot_notification)
    def on_boot(self, firmware_version: str | None = None, **_: Any) -> Any:
        status, interval = self.csms.next_boot_answer(firmware_version)
        return call_result.BootNotification(utc_now(), interval, status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(utc_now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, status: str, error_code: str, **_: Any) -> Any:
        self.csms.statuses.append((connector_id, status, error_code))
        return call_result.StatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **_: Any) -> Any:
        self.csms.firmware_statuses.append(status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str, **_: Any) -> Any:
        self.csms.diagnostics_statuses.append(status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        return call_result.Authorize(self.csms.id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                 **_: Any) -> Any:
        tx = self.csms.open_transaction(connector_id, id_tag, meter_start, timestamp)
        return call_result.StartTransaction(tx.transaction_id, self.csms.id_tag_info(id_tag))

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                        transaction_id: int | None = None, **_: Any) -> Any:
        tx = self.csms.transactions.get(transaction_id) if transaction_id is not None else None
        if tx is not None:
            tx.meter_values.extend(meter_value)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int,
                reason: str | None = None, id_tag: str | None = None, **_: Any) -> Any:
        self.csms.close_transaction(transaction_id, meter_stop, timestamp, reason, id_tag)
        return call_result.StopTransaction(
            id_tag_info=self.csms.id_tag_info(id_tag) if id_tag else None
        )


class Csms:
    """The CSMS server. ``async with Csms() as csms:`` listens on ``csms.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp",
                 password: str | None = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.password = password
        self.frames: list[Frame] = []
        self.violations: list[str] = []
        self.statuses: list[tuple[int, str, str]] = []
        self.firmware_statuses: list[str] = []  # FirmwareStatusNotification, in order
        self.diagnostics_statuses: list[str] = []
        self.transactions: dict[int, TransactionRecord] = {}
        self.boot_answers: list[tuple[str, int]] = []  # consumed first; then Accepted
        self.rejected_firmware: set[str] = set()  # BootNotifications from these: Rejected
        self.heartbeat_interval = 300
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.default_authorization: str = AuthorizationStatus.accepted.value
        self.on_frame: Callable[[Frame], None] | None = None
        # Misbehaviour per action name ("StartTransaction"), for tests:
        self.error_answers: dict[str, int] = {}  # the next n calls get a CALLERROR InternalError
        self.answer_delays: dict[str, list[float]] = {}  # each call pops its delay (seconds)
        self.silent: set[str] = set()  # calls never answered
        self._background: set[asyncio.Task[None]] = set()
        self.session: CentralSide | None = None
        self.connections = 0
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    # --- serving ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    async def __aenter__(self) -> Csms:
        self._server = await serve(self._handler, self.host, self.port,
                                   subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:  # None while down (go_down)
            self._server.close()
            await self._server.wait_closed()

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
            self._server = await serve(self._handler, self.host, self.port,
                                       subprotocols=["ocpp1.6"])  # type: ignore[list-item]

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        charge_point_id = path.rstrip("/").rsplit("/", 1)[-1]
        if ws.subprotocol != "ocpp1.6":
            self.violations.append(f"connection without subprotocol ocpp1.6 ({ws.subprotocol})")
        self.session = CentralSide(charge_point_id, _Recorder(ws, self), self)
        self.connections += 1
        await self._notify()
        try:
            await self.session.start()
        except ConnectionClosed:
            pass
        finally:
            self.session = None
            await self._notify()

    # --- recording and validation ---------------------------------------------------------

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
        if direction == "in":
            self._validate(raw, frame)
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        asyncio.get_running_loop().create_task(self._notify())

    def _validate(self, raw: str, frame: Frame) -> None:
        try:
            message = unpack(raw)
            if isinstance(message, Call):
                _validate_payload(message, "1.6")
            elif isinstance(message, CallResult):
                frame.action = self._action_of(message.unique_id)
                if frame.action:
                    message.action = frame.action
                    _validate_payload(message, "1.6")
        except OCPPError as error:
            self.violations.append(f"{type(error).__name__}: {error} in {raw}")

    def _action_of(self, unique_id: str) -> str:
        for frame in reversed(self.frames):
            if frame.direction == "out" and frame.message_type == 2:
                try:
                    if json.loads(frame.raw)[1] == unique_id:
                        return frame.action
                except (ValueError, IndexError):
                    continue
        return ""

    # --- the books -----------------------------------------------------------------------

    def next_boot_answer(self, firmware_version: str | None = None) -> tuple[str, int]:
        if firmware_version is not None and firmware_version in self.rejected_firmware:
            return RegistrationStatus.rejected.value, 1
        if self.boot_answers:
            return self.boot_answers.pop(0)
        return RegistrationStatus.accepted.value, self.heartbeat_interval

    def id_tag_info(self, id_tag: str) -> dict[str, Any]:
        return self.authorizations.get(id_tag.upper(), {"status": self.default_authorization})

    def open_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                         timestamp: str) -> TransactionRecord:
        tx = TransactionRecord(next(self._ids), connector_id, id_tag, meter_start, timestamp)
        self.transactions[tx.transaction_id] = tx
        return tx

    def close_transaction(self, transaction_id: int, meter_stop: int, timestamp: str,
                          reason: str | None, id_tag: str | None) -> None:
        tx = self.transactions.get(transaction_id)
        if tx is None:
            self.violations.append(f"StopTransaction for unknown transaction {transaction_id}")
            return
        tx.stop_count += 1
        tx.meter_stop, tx.stopped = meter_stop, timestamp
        tx.reason, tx.stop_id_tag = reason or "Local", id_tag

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

    def last_status(self, connector_id: int) -> str | None:
        for cid, status, _ in reversed(self.statuses):
            if cid == connector_id:
                return status
        return None

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
