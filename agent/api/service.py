"""The sessions service: :class:`agent.sessions.Sessions` on the event loop, over the store.

It is the Python interface other local front ends use (the HTTP API in
:mod:`agent.api.server`, a dashboard): ``start``, ``stop``, ``get``, ``query``,
``authorizations``, and ``subscribe`` for every change of a session record (the live event
stream). It feeds the pure component what the core did (a ``Runtime`` listener), stores each
record it changes, arms its timers on the loop, and records every authorization decision.

A store that fails here is logged and never touches charging: the listener catches it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent import clock, local_limit
from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.authorization import local_decision
from agent.core.connector import Connector
from agent.core.lifecycle import Phase
from agent.core.types import ConnectorStatus, ErrorCode, RegistrationStatus, RequestStatus
from agent.runtime import Runtime
from agent.sessions import (
    Effect,
    Saved,
    Session,
    Sessions,
    Status,
    Timer,
    Withdraw,
    from_record,
    to_record,
)
from agent.store import Store, StoreError

log = logging.getLogger(__name__)

DECISION_MARGIN = 5.0
"""Seconds beyond the authorization timeout a start request waits for the core's decision."""

Listener = Callable[[Session, str | None], None]


@dataclass(frozen=True)
class StartError:
    """A start the contract answers with an error: ``status``, ``kind`` (error.type; None for
    the 404), ``details`` (human text) and extra fields of the error object."""

    status: int
    kind: str | None
    details: str
    extra: dict[str, Any] | None = None


class UnexpectedError(Exception):
    """A start or stop failed inside the agent: ``code`` is the support code (a UUID) that is
    also in the log line of the failure."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# Why a start failed (agent.core.authorization.REASONS, and the sessions' own) -> the answer.
_PROVIDER = "Charging provider didn't manage to start charging"
NOT_ANSWERING = frozenset({ErrorCode.POWER_METER_FAILURE.value, ErrorCode.INTERNAL_ERROR.value})
"""Faults that mean a device (meter, pilot/EVSE board) or the store does not answer: the
connector's state cannot be confirmed, so a start is the contract's 424, not the 409 of a
connector out of order (a ground or contactor fault)."""

_FAILURES: dict[str, tuple[int, str, str]] = {
    "unknown_card": (424, "charging_provider_error", _PROVIDER + ": the token is unknown"),
    "blocked": (424, "charging_provider_error", _PROVIDER + ": the token is blocked"),
    "expired": (424, "charging_provider_error", _PROVIDER + ": the token has expired"),
    "concurrent_transaction": (424, "charging_provider_error",
                               _PROVIDER + ": the token is charging elsewhere"),
    "csms_timeout": (424, "charging_provider_error",
                     _PROVIDER + ": no answer in time and the offline rules deny"),
    "csms_unreachable": (424, "charging_provider_error",
                         _PROVIDER + ": not reachable and the offline rules deny"),
    "not_answering": (424, "station_availability_issue",
                      "We were not able to fetch the station's state (a device of the "
                      "connector does not answer); try again a bit later"),
    "offline_unknown": (424, "station_availability_issue",
                        "We were not able to confirm the station's state (not registered "
                        "with the charging provider); try again a bit later"),
    "connector_not_free": (409, "station_availability_issue",
                           "Connector you were trying to start charging is not free"),
    "reserved_for_another": (409, "station_availability_issue",
                             "Connector you were trying to start charging is reserved for "
                             "someone else"),
}


class SessionService:
    def __init__(self, store: Store, runtime: Runtime, evse_ids: dict[int, str], *,
                 authorize_timeout: float) -> None:
        self.store = store
        self.runtime = runtime
        self.evse_ids = evse_ids
        self.authorize_timeout = authorize_timeout
        self.sessions = Sessions(evse_ids)
        self.listeners: list[Listener] = []
        self.on_saved: Callable[[Saved], None] | None = None  # in the record's commit
        # Asked before an API start is handed to the core (agent.api.preauth), if set.
        self.pre_authorize: Callable[[Session], Awaitable[StartError | None]] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # --- life cycle ----------------------------------------------------------------------

    def attach(self) -> None:
        """Load the records, settle what a restart left behind, follow the core."""
        self.sessions.restore([from_record(json.loads(body))
                               for body in self.store.session_bodies(unfinished=True)])
        stopped = {row.tx_ref: (row.meter_stop or 0, row.stop_reason or "Other",
                                row.stopped_at or row.last_activity_at, row.stop_confirmed)
                   for row in self.store.transactions() if row.stopped}
        stop_refs = {row.tx_ref: row.ref for row in self.store.journal_rows()
                     if row.kind == "TransactionEnded" and row.tx_ref is not None}
        self._apply(self.sessions.recover(stopped, stop_refs, clock.now().utc))
        self.runtime.listeners.append(self._on_core)

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # --- reading -------------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        """The record: in memory while under way, else from the store."""
        session = self.sessions.get(session_id)
        if session is not None:
            return session
        body = self.store.session_body(session_id)
        return None if body is None else from_record(json.loads(body))

    def query(self, *, id_tag: str | None = None, status: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              limit: int = 50, offset: int = 0) -> tuple[int, list[Session]]:
        """(total matching, one page of them, newest first)."""
        filters: dict[str, Any] = {"id_tag": id_tag, "status": status, "since": since,
                                   "until": until}
        total = self.store.session_count(**filters)
        bodies = self.store.session_bodies(**filters, limit=limit, offset=offset)
        return total, [from_record(json.loads(body)) for body in bodies]

    def authorizations(self, id_tag: str | None = None,
                       since: datetime | None = None) -> list[dict[str, Any]]:
        return self.store.authorization_rows(id_tag=id_tag, since=since)

    def connector_of(self, evse_id: str) -> int | None:
        for cid, known in self.evse_ids.items():
            if known.lower() == evse_id.lower():
                return cid
        return None

    # --- starting ------------------------------------------------------------------------

    def refusal(self, connector_id: int, id_tag: str) -> StartError | None:
        """What the contract answers before the core is asked, if anything (409s, 424)."""
        now = clock.now().utc
        station = self.runtime.station
        busy = self.sessions.active_for(id_tag)
        charging = any(c.transaction is not None and c.transaction.id_tag.lower()
                       == id_tag.lower() for c in station.connectors.values())
        if busy or charging:
            return StartError(409, "already_charging", "User already has active charging "
                              "session OR is starting charging")
        if self.sessions.start_blocked(connector_id, now):
            return StartError(409, "already_charging", "A start on this connector was "
                              "accepted less than 60 s ago")
        connector = station.connectors[connector_id]
        status = station.status(connector_id)
        if station.reservations.may_block(connector, id_tag):
            return StartError(409, "station_availability_issue",
                              _FAILURES["reserved_for_another"][2])
        if status is ConnectorStatus.FAULTED and connector.faults and set(
                connector.faults) <= NOT_ANSWERING:
            return StartError(424, "station_availability_issue", _FAILURES["not_answering"][2])
        if (status in (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE)
                or not self._takes_a_start(connector, now)
                or self.sessions.on_connector(connector_id)):
            return StartError(409, "station_availability_issue", "Connector you were trying "
                              f"to start charging is out of order ({status.value})")
        if station.registration.status is not RegistrationStatus.ACCEPTED and local_decision(
                id_tag, station.authorizer.cache, station.settings, online=False, now=now,
                local_list=station.authorizer.local_list) is None:
            return StartError(424, "station_availability_issue", _FAILURES["offline_unknown"][2])
        return None

    def _takes_a_start(self, connector: Connector, now: datetime) -> bool:
        """Free, or holding only the token of a FAILED API start that a new start replaces
        (:meth:`agent.sessions.Sessions.replaceable`; the core then releases it)."""
        if connector.free:
            return True
        held = connector.authorization if connector.phase is Phase.AUTHORIZED else None
        return (connector.in_service and not connector.faulted
                and self.sessions.replaceable(connector.connector_id,
                                              held.id_tag if held else None, now) is not None)

    async def start(self, connector_id: int, id_tag: str) -> tuple[Session, StartError | None]:
        """Create the session, ask the core, wait for the token's decision. The session is
        returned with the error the contract answers, if the start failed."""
        code = str(uuid.uuid4())
        try:
            now = clock.now().utc
            refused = self.refusal(connector_id, id_tag)
            session = self.sessions.create(code, connector_id, id_tag, now)
            if refused is None and self.pre_authorize is not None:
                refused = await self.pre_authorize(session)
                now = clock.now().utc
            if refused is not None:
                self._apply(self.sessions.fail(session, refused.kind or "refused", now))
                return session, refused
            self._apply(self.sessions.requested(session, now))
            self.runtime.post(ev.StartRequested(id_tag, connector_id))
            await self._until(session.id, lambda s: s.authorized or s.status not in (
                Status.CREATED, Status.WAITING_TO_START), self.authorize_timeout + DECISION_MARGIN)
        except (StoreError, KeyError, RuntimeError) as error:
            log.error("sessions: start of %s on connector %s failed: %s (support code %s)",
                      id_tag, connector_id, error, code)
            raise UnexpectedError(code) from error
        current = self.get(session.id) or session
        return current, self._failure(current)

    def _failure(self, session: Session) -> StartError | None:
        if session.status is not Status.FAILED:
            return None
        status, kind, details = _FAILURES.get(session.failure or "", (
            424, "charging_provider_error", _PROVIDER))
        extra = ({"ocpp_status": session.authorization_status}
                 if session.authorization_status else None)
        return StartError(status, kind, details, extra)

    def set_amount(self, session_id: str, amount: str) -> None:
        """What the start notification's receiver answered (``{"amount": "0"}``)."""
        session = self.get(session_id)
        if session is not None:
            session.amount = amount
            self._apply([Saved(dataclasses.replace(session))])

    # --- stopping ------------------------------------------------------------------------

    def stop(self, session: Session) -> tuple[Session, str | None]:
        """Ask the core to stop ``session``; (the record, a reason it cannot be stopped)."""
        if session.status in (Status.STOPPED, Status.COMPLETE, Status.WAITING_TO_STOP):
            return session, None  # idempotent
        if session.mode.value == "local":
            return session, "a session started at the charger is stopped at the charger"
        if session.status not in (Status.STARTED, Status.STOP_FAILED) or session.tx_ref is None:
            return session, f"the session is {session.status.value}, not charging"
        answer = self.runtime.command(msg.CsmsRemoteStop(tx_ref=session.tx_ref))
        self.runtime.replied()  # the stop's messages go out now
        accepted = (isinstance(answer, msg.CommandResult)
                    and answer.status is RequestStatus.ACCEPTED)
        current = self.get(session.id) or session
        if current.status is Status.STARTED or not accepted:
            self._apply(self.sessions.stop_requested(current, accepted, clock.now().utc))
        return self.get(session.id) or current, None

    # --- the local limit (agent/local_limit.py) -------------------------------------------

    def set_local_limit(self, connector_id: int, amps: float | None,
                        source: str) -> dict[str, Any]:
        """Cap (``amps``), pause (0) or free (None) the connector; its view after the change.
        Raises :class:`agent.local_limit.LimitError` for a bad request."""
        view = local_limit.set_local_limit(self.runtime, connector_id, amps, source)
        log.info("local limit: connector %s %s by %s", connector_id,
                 "cleared" if amps is None else f"{amps:g} A", source)
        return view

    def set_phases(self, connector_id: int, phases: int | None,
                   source: str) -> dict[str, Any]:
        """Ask for 1 or 3 phases (None: the charger decides); the connector's view after it.
        Raises :class:`agent.local_limit.LimitError` for a bad request."""
        view = local_limit.set_phases(self.runtime, connector_id, phases, source)
        log.info("phases: connector %s %s by %s", connector_id,
                 "left to the charger" if phases is None else phases, source)
        return view

    def connectors(self) -> list[dict[str, Any]]:
        station = self.runtime.station
        return [local_limit.connector_view(station, cid) for cid in station.connectors]

    # --- following the core ----------------------------------------------------------------

    def _on_core(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        try:
            now = clock.now().utc
            for effect in effects:
                if isinstance(effect, fx.AuthorizationDecided):
                    self.store.authorization_put(now, effect.id_tag, effect.connector_id,
                                                 effect.purpose, effect.accepted,
                                                 effect.source, effect.status, effect.reason)
                    log.info("authorization: %s on connector %s for %s: %s (%s, %s)",
                             effect.id_tag, effect.connector_id, effect.purpose,
                             "accepted" if effect.accepted else "refused", effect.source,
                             effect.reason)
            self._apply(self.sessions.observe(event, effects, now, str(uuid.uuid4())))
        except Exception:  # never let a record break the core's listener chain
            log.exception("sessions: cannot keep the session records")

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Timer):
                self._timer(effect)
                continue
            if isinstance(effect, Withdraw):
                self.runtime.post(ev.StartWithdrawn(effect.id_tag, effect.connector_id))
                continue
            session = effect.session
            with self.store.write():  # the record and its webhooks in one commit
                self.store.session_put(session.id, session.id_tag, session.status.value,
                                       session.created_at, json.dumps(to_record(session)))
                if self.on_saved is not None:
                    self.on_saved(effect)
            for listener in list(self.listeners):
                listener(session, effect.event)

    def _timer(self, timer: Timer) -> None:
        old = self._timers.pop(timer.name, None)
        if old is not None:
            old.cancel()
        if timer.delay is not None:
            loop = asyncio.get_running_loop()
            self._timers[timer.name] = loop.call_later(timer.delay, self._fire, timer.name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        try:
            self._apply(self.sessions.timer_fired(name, clock.now().utc))
        except StoreError as error:
            log.error("sessions: %s", error)

    async def _until(self, session_id: str, wanted: Callable[[Session], bool],
                     within: float) -> None:
        current = self.get(session_id)
        if current is not None and wanted(current):
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def listener(session: Session, event: str | None) -> None:
            if session.id == session_id and wanted(session) and not done.done():
                done.set_result(None)

        self.listeners.append(listener)
        try:
            await asyncio.wait_for(done, within)
        except TimeoutError:
            pass  # the record says what is known; WAITING_TO_START goes on
        finally:
            self.listeners.remove(listener)

