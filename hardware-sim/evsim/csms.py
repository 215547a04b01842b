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
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call, CallResult, _validate_payload, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _CentralSide
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, AuthorizationStatus
from websockets.exceptions import ConnectionClosed

from evsim.csms_base import CsmsServer, Frame, Recorder, call_action, utc_now

__all__ = ["CentralSide", "Csms", "Frame", "TransactionRecord", "utc_now"]
log = logging.getLogger(__name__)


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


class CentralSide(_CentralSide):  # type: ignore[misc]
    """The CSMS's session with one charger."""

    def __init__(self, charge_point_id: str, connection: Recorder, csms: Csms) -> None:
        super().__init__(charge_point_id, connection, response_timeout=10)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        """Misbehave first if the test asked for it (see :class:`Csms`), else route."""
        action = call_action(raw_msg)
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

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status(self, status: str, request_id: int | None = None,
                                  **_: Any) -> Any:
        self.csms.signed_firmware_statuses.append((status, request_id))
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, status: str, request_id: int | None = None, **_: Any) -> Any:
        self.csms.log_statuses.append((status, request_id))
        return call_result.LogStatusNotification()

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

    @on(Action.security_event_notification)
    def on_security_event(self, type: str, timestamp: str, tech_info: str | None = None,
                          **_: Any) -> Any:
        self.csms.security_events.append((type, tech_info))
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **_: Any) -> Any:
        self.csms.csrs.append(csr)
        return call_result.SignCertificate(self.csms.sign_certificate_answer)

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int,
                reason: str | None = None, id_tag: str | None = None, **_: Any) -> Any:
        self.csms.close_transaction(transaction_id, meter_stop, timestamp, reason, id_tag)
        return call_result.StopTransaction(
            id_tag_info=self.csms.id_tag_info(id_tag) if id_tag else None
        )


class Csms(CsmsServer[CentralSide]):
    """The CSMS server. ``async with Csms() as csms:`` listens on ``csms.url``."""

    subprotocol = "ocpp1.6"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp",
                 password: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, path, password, ssl_context)
        self.security_events: list[tuple[str, str | None]] = []
        self.csrs: list[str] = []
        self.sign_certificate_answer = "Accepted"
        self.statuses: list[tuple[int, str, str]] = []
        self.firmware_statuses: list[str] = []  # FirmwareStatusNotification, in order
        self.diagnostics_statuses: list[str] = []
        # SignedFirmwareStatusNotification and LogStatusNotification: (status, requestId)
        self.signed_firmware_statuses: list[tuple[str, int | None]] = []
        self.log_statuses: list[tuple[str, int | None]] = []
        self.transactions: dict[int, TransactionRecord] = {}
        self.rejected_firmware: set[str] = set()  # BootNotifications from these: Rejected
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.default_authorization: str = AuthorizationStatus.accepted.value
        # Misbehaviour per action name ("StartTransaction"), for tests:
        self.error_answers: dict[str, int] = {}  # the next n calls get a CALLERROR InternalError
        self.answer_delays: dict[str, list[float]] = {}  # each call pops its delay (seconds)
        self.silent: set[str] = set()  # calls never answered
        self._ids = itertools.count(1)

    def open_session(self, charge_point_id: str, connection: Recorder) -> CentralSide:
        return CentralSide(charge_point_id, connection, self)

    # --- validation -----------------------------------------------------------------------

    def validate(self, direction: str, raw: str, frame: Frame) -> None:
        if direction != "in":
            return
        try:
            message = unpack(raw)
            if isinstance(message, Call):
                _validate_payload(message, "1.6")
            elif isinstance(message, CallResult):
                frame.action = self.action_of(message.unique_id)
                if frame.action:
                    message.action = frame.action
                    _validate_payload(message, "1.6")
        except OCPPError as error:
            self.violations.append(f"{type(error).__name__}: {error} in {raw}")

    # --- the books -----------------------------------------------------------------------

    def next_boot_answer(self, firmware_version: str | None = None) -> tuple[str, int]:
        """Rejected for a firmware version in :attr:`rejected_firmware` (an update that
        must fail its health check); else as every CSMS of the simulator answers."""
        if firmware_version is not None and firmware_version in self.rejected_firmware:
            return "Rejected", 1
        return super().next_boot_answer()

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

    def last_status(self, connector_id: int) -> str | None:
        for cid, status, _ in reversed(self.statuses):
            if cid == connector_id:
                return status
        return None
