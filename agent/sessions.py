"""Session records: every charging session, however it started, and its status.

A pure component like the core's features: no I/O, no clock, no asyncio. It is fed what the
core decided (:meth:`Sessions.observe` gets each event with its effects, from
``Runtime.listeners``) and what a local client asked (:meth:`Sessions.create`,
:meth:`Sessions.requested`, :meth:`Sessions.stop_requested`), and it answers with
:class:`Saved` and :class:`Timer` effects that its shell (:mod:`agent.api.service`) applies:
store the record, arm a timer whose firing comes back as :meth:`Sessions.timer_fired`.

The statuses and their rules follow the remote-sessions convention
(``../shared/reference/sessions-api.md`` §2): CREATED -> WAITING_TO_START -> STARTED ->
WAITING_TO_STOP -> STOPPED -> COMPLETE, or FAILED (could not start; also after 2 minutes in
WAITING_TO_START) and STOP_FAILED (the stop was refused; it may be retried). STOPPED means the
charger ended the session and the StopTransaction is queued; COMPLETE that the CSMS confirmed
it. A session started through the API may stop locally (unplug, card, EV).

Which status may follow which is :data:`FOLLOWS`. The reference's one step back is FAILED ->
STARTED: "a failed-to-start event can be followed by a completed one when the charger charged
despite a communication problem", and "the most recent update of the session is the truth"
(§2). Here that is an API start FAILED after its 2 minutes in WAITING_TO_START while the core
still held its token (ConnectionTimeOut may be longer than 2 minutes): if the EV is plugged in
within that window, the same record moves on to STARTED instead of a second session being
made (:func:`resumable`, :meth:`Sessions.observe`). Unless a new start on that connector
came first: "after 2 minutes in WAITING_TO_START consider it failed and allow a new start"
(§2), so the new start replaces it (:meth:`Sessions.replaceable`, a :class:`Withdraw` has the
core release the old token) and the FAILED record stays FAILED.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.types import AuthStatus, TxTrigger

WAIT_TO_START_SECONDS = 120.0
"""A session still WAITING_TO_START after this is FAILED (the reference's 2 minutes)."""
START_BLOCK_SECONDS = 60.0
"""After an accepted start, further starts on the same connector are refused this long."""


class Status(enum.StrEnum):
    CREATED = "CREATED"
    WAITING_TO_START = "WAITING_TO_START"
    STARTED = "STARTED"
    WAITING_TO_STOP = "WAITING_TO_STOP"
    STOP_FAILED = "STOP_FAILED"
    STOPPED = "STOPPED"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


ACTIVE = (Status.CREATED, Status.WAITING_TO_START, Status.STARTED, Status.WAITING_TO_STOP,
          Status.STOP_FAILED)
"""Statuses of a session that holds its connector (or is about to)."""
ENDED = (Status.STOPPED, Status.COMPLETE, Status.FAILED)
FINAL = (Status.COMPLETE, Status.FAILED)
"""Statuses that end a record's life in memory: such records live in the store only (a
FAILED start the core may still begin is kept aside until its window closes)."""

FOLLOWS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.WAITING_TO_START, Status.STARTED, Status.FAILED}),
    Status.WAITING_TO_START: frozenset({Status.STARTED, Status.FAILED}),
    Status.STARTED: frozenset({Status.WAITING_TO_STOP, Status.STOP_FAILED, Status.STOPPED}),
    Status.WAITING_TO_STOP: frozenset({Status.STOPPED, Status.STOP_FAILED}),
    # "After STOP_FAILED a stop may be retried; a stopped or completed event should follow."
    Status.STOP_FAILED: frozenset({Status.WAITING_TO_STOP, Status.STOP_FAILED, Status.STOPPED}),
    Status.STOPPED: frozenset({Status.COMPLETE}),
    Status.COMPLETE: frozenset(),
    # "A failed-to-start event can be followed by a completed one when the charger charged
    # despite a communication problem" (sessions-api.md §2): the charger began it after all.
    Status.FAILED: frozenset({Status.STARTED}),
}
"""The statuses each status may move on to (sessions-api.md §2)."""


class Mode(enum.StrEnum):
    LOCAL = "local"  # a card at the charger
    REMOTE = "remote"  # a RemoteStartTransaction from the CSMS
    API = "api"  # POST /api/v1/sessions/start


@dataclass
class Session:
    """One session's record, as stored and as the API shows it."""

    id: str
    mode: Mode
    connector_id: int
    evse_id: str
    id_tag: str
    status: Status
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    tx_ref: int | None = None
    transaction_id: int | None = None
    meter_start_wh: int | None = None
    meter_stop_wh: int | None = None
    stop_reason: str | None = None
    failure: str | None = None  # why it FAILED / STOP_FAILED: an authorization reason, ...
    authorization_status: str | None = None  # the OCPP status of the token's decision
    start_ref: str | None = None  # the core's ref of its TransactionStarted
    stop_ref: str | None = None  # ... and of its TransactionEnded
    seq: int = 0  # the number of the newest event published for this session
    authorized: bool = False  # an API start: the token was accepted, the EV may plug in
    amount: str | None = None  # what the start notification's receiver answered

    @property
    def energy_wh(self) -> int | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh


def may_follow(old: Status, new: Status) -> bool:
    """``new`` may follow ``old`` in one record (:data:`FOLLOWS`)."""
    return new in FOLLOWS[old]


def resumable(session: Session, connector_id: int, id_tag: str, now: datetime,
              window_end: datetime) -> bool:
    """A transaction the core began on ``connector_id`` for ``id_tag`` at ``now`` is this
    FAILED start's after all: an API start on that connector for that token (compared as
    OCPP compares idTags, without case) that failed while the core held its token, and the
    core's window for the plug-in (ConnectionTimeOut from the accepted decision) has not
    closed."""
    return (session.status is Status.FAILED and session.mode is Mode.API
            and session.connector_id == connector_id
            and session.id_tag.lower() == id_tag.lower() and now <= window_end)


@dataclass(frozen=True)
class Saved:
    """The record changed: store it. ``event`` names the session event it is, if any
    (SESSION_STARTED, SESSION_FAILED, SESSION_STOPPED, SESSION_COMPLETE), numbered
    ``session.seq`` within the session."""

    session: Session
    event: str | None = None
    start: bool | None = None  # a start notification is due: accepted (True) or not (False)


@dataclass(frozen=True)
class Timer:
    """Arm ``name`` to fire after ``delay`` seconds (``delay`` None: cancel it)."""

    name: str
    delay: float | None


@dataclass(frozen=True)
class Withdraw:
    """Ask the core to release the token it holds for ``id_tag`` on ``connector_id`` for a
    FAILED API start that a new start replaces (:class:`agent.core.events.StartWithdrawn`);
    before the new start is handed to the core."""

    connector_id: int
    id_tag: str


Effect = Saved | Timer | Withdraw


@dataclass
class Sessions:
    """The records of the sessions still under way, in memory; the shell stores each
    :class:`Saved`. A record that reaches a :data:`FINAL` status leaves memory (the shell
    reads it from the store), so memory stays bounded by the connectors, not the history."""

    evse_ids: dict[int, str]
    sessions: dict[str, Session] = field(default_factory=dict)
    _effects: list[Effect] = field(default_factory=list)
    _last_start: dict[int, datetime] = field(default_factory=dict)
    _new_id: list[str] = field(default_factory=list)  # ids handed in for local/remote ones
    # connector -> when the core's ConnectionTimeOut for the token it holds there runs out
    _token_wait: dict[int, datetime] = field(default_factory=dict)
    # connector -> a FAILED API start whose token the core still holds, and until when
    _lapsed: dict[int, tuple[Session, datetime]] = field(default_factory=dict)

    # --- what the shell restores and asks ------------------------------------------------

    def restore(self, sessions: list[Session]) -> None:
        """The stored records that are not :data:`FINAL`."""
        for session in sessions:
            if session.status not in FINAL:
                self.sessions[session.id] = session

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def active_for(self, id_tag: str) -> list[Session]:
        return [s for s in self.sessions.values()
                if s.status in ACTIVE and s.id_tag.lower() == id_tag.lower()]

    def on_connector(self, connector_id: int) -> Session | None:
        """The session that holds ``connector_id`` now, if any."""
        for session in self.sessions.values():
            if session.connector_id == connector_id and session.status in ACTIVE:
                return session
        return None

    def replaceable(self, connector_id: int, held_id_tag: str | None,
                    now: datetime) -> Session | None:
        """The FAILED API start whose token (``held_id_tag``, None when the connector holds
        none) the core still holds on ``connector_id`` for the plug-in: a new start may take
        its place ("after 2 minutes in WAITING_TO_START consider it failed and allow a new
        start"; "the user must not be blocked from starting again", sessions-api.md §2).
        :meth:`requested` then has the core release that token."""
        session, window_end = self._lapsed.get(connector_id, (None, now))
        if session is None or held_id_tag is None or now > window_end:
            return None
        return session if session.id_tag.lower() == held_id_tag.lower() else None

    def start_blocked(self, connector_id: int, now: datetime) -> bool:
        """A start on ``connector_id`` was accepted less than 60 s ago."""
        last = self._last_start.get(connector_id)
        return last is not None and (now - last).total_seconds() < START_BLOCK_SECONDS

    # --- a local client asks -------------------------------------------------------------

    def create(self, session_id: str, connector_id: int, id_tag: str, now: datetime,
               mode: Mode = Mode.API) -> Session:
        evse_id = self.evse_ids.get(connector_id, "")  # "" for a card before a connector
        session = Session(session_id, mode, connector_id, evse_id, id_tag,
                          Status.CREATED, now, now)
        self.sessions[session_id] = session
        self._save(session)
        return session

    def fail(self, session: Session, failure: str, now: datetime) -> list[Effect]:
        """The start could not be asked of the charger (refused before the core)."""
        self._to(session, Status.FAILED, now, "SESSION_FAILED", failure=failure)
        return self._take()

    def requested(self, session: Session, now: datetime) -> list[Effect]:
        """The start is handed to the core (ev.StartRequested): wait for it. A FAILED start
        whose token the core still holds on the connector is replaced: a :class:`Withdraw`
        comes first; once the core released the token (ev.StartWithdrawn, :meth:`observe`)
        that session stays FAILED for good. Should the EV be plugged in before the core
        released it, that FAILED start resumes after all and the new one finds the
        connector busy."""
        replaced, _ = self._lapsed.get(session.connector_id, (None, now))
        if replaced is not None:
            self._effects.append(Withdraw(session.connector_id, replaced.id_tag))
        self._to(session, Status.WAITING_TO_START, now)
        self._effects.append(Timer(f"wait:{session.id}", WAIT_TO_START_SECONDS))
        return self._take()

    def stop_requested(self, session: Session, accepted: bool, now: datetime) -> list[Effect]:
        """The stop was handed to the core; ``accepted`` False: the core had nothing to stop.
        A session that ended meanwhile stays as it is."""
        if not may_follow(session.status, Status.WAITING_TO_STOP):
            return []
        if accepted:
            self._to(session, Status.WAITING_TO_STOP, now)
        else:
            self._to(session, Status.STOP_FAILED, now, failure="not_running")
        return self._take()

    def timer_fired(self, name: str, now: datetime) -> list[Effect]:
        kind, _, session_id = name.partition(":")
        session = self.sessions.get(session_id)
        if kind == "wait" and session is not None and session.status in (
                Status.CREATED, Status.WAITING_TO_START):
            self._to(session, Status.FAILED, now, "SESSION_FAILED", failure="start_timeout")
            window_end = self._token_wait.get(session.connector_id)
            if session.authorized and window_end is not None and now < window_end:
                # The core still holds the token: the EV may yet be plugged in (FOLLOWS).
                self._lapsed[session.connector_id] = (session, window_end)
        return self._take()

    # --- what the core did ----------------------------------------------------------------

    def observe(self, event: ev.Event, effects: list[fx.Effect], now: datetime,
                new_id: str) -> list[Effect]:
        """One event of the core with its effects. ``new_id`` names a session this event
        may create (a card or a remote start)."""
        self._new_id = [new_id]
        for effect in effects:
            match effect:
                case fx.AuthorizationDecided():
                    self._on_decision(effect, now)
                case fx.Send(ref=ref, req=msg.TransactionStarted() as req):
                    self._on_started(ref, req, now)
                case fx.Send(ref=ref, req=msg.TransactionEnded() as req):
                    self._on_ended(ref, req, now)
                case fx.StartTimer(name=name, delay=delay) if name.startswith("connection:"):
                    self._token_wait[int(name.partition(":")[2])] = now + timedelta(
                        seconds=delay)
                case fx.CancelTimer(name=name) if name.startswith("connection:"):
                    self._token_wait.pop(int(name.partition(":")[2]), None)
        match event:
            case ev.CallAnswered(ref=ref, conf=conf):
                self._on_answer(ref, conf, now)
            case ev.TimerFired(name=name) if name.startswith("connection:"):
                self._on_plug_timeout(int(name.partition(":")[2]), now)
            case ev.StartWithdrawn(id_tag=id_tag, connector_id=connector_id):
                self._withdrawn(connector_id, id_tag)
        return self._take()

    def _waiting(self, connector_id: int, id_tag: str | None = None) -> Session | None:
        for session in self.sessions.values():
            if (session.mode is Mode.API and session.connector_id == connector_id
                    and session.status in (Status.CREATED, Status.WAITING_TO_START)
                    and (id_tag is None or session.id_tag.lower() == id_tag.lower())):
                return session
        return None

    def _on_decision(self, decision: fx.AuthorizationDecided, now: datetime) -> None:
        if decision.purpose in ("connector", "remote") and not decision.accepted:
            self._refused(decision, now)
        if decision.purpose != "api":
            return
        session = self._waiting(decision.connector_id, decision.id_tag)
        if session is None:
            return
        session.authorization_status = decision.status
        if decision.accepted:
            session.authorized = True
            self._last_start[session.connector_id] = now
            self._save(session)
        else:
            self._to(session, Status.FAILED, now, "SESSION_FAILED", failure=decision.reason)

    def _refused(self, decision: fx.AuthorizationDecided, now: datetime) -> None:
        """A card at the charger or a remote start the charge box refused: a FAILED record
        with the reason, and the start notification with ``accepted`` false (§3: "when a
        charge has started, or has been rejected by the charge box")."""
        mode = Mode.REMOTE if decision.purpose == "remote" else Mode.LOCAL
        session = self.create(self._new_id.pop() if self._new_id else f"refused-{now.isoformat()}",
                              decision.connector_id, decision.id_tag, now, mode)
        session.authorization_status = decision.status
        self._to(session, Status.FAILED, now, "SESSION_FAILED", failure=decision.reason)

    def _on_started(self, ref: str, req: msg.TransactionStarted, now: datetime) -> None:
        session = (self._waiting(req.connector_id, req.id_tag)
                   or self._resumed(req.connector_id, req.id_tag, now))
        if session is None:
            mode = Mode.REMOTE if req.trigger is TxTrigger.REMOTE_START else Mode.LOCAL
            session = self.create(self._new_id.pop() if self._new_id else f"tx-{req.tx_ref}",
                                  req.connector_id, req.id_tag, now, mode)
        self._effects.append(Timer(f"wait:{session.id}", None))
        session.tx_ref, session.start_ref = req.tx_ref, ref
        session.meter_start_wh, session.started_at = req.meter_start_wh, req.timestamp
        self._to(session, Status.STARTED, now, "SESSION_STARTED")

    def _resumed(self, connector_id: int, id_tag: str, now: datetime) -> Session | None:
        """The FAILED start this transaction belongs to after all (:func:`resumable`), back
        in memory; any other start kept aside on the connector is over."""
        session, window_end = self._lapsed.pop(connector_id, (None, now))
        if session is None or not resumable(session, connector_id, id_tag, now, window_end):
            return None
        session.failure = None  # it did start: its SESSION_FAILED event stays in the history
        self.sessions[session.id] = session
        return session

    def _on_ended(self, ref: str, req: msg.TransactionEnded, now: datetime) -> None:
        session = self._by_tx(req.tx_ref)
        if session is None or not may_follow(session.status, Status.STOPPED):
            return
        session.stop_ref, session.meter_stop_wh = ref, req.meter_stop_wh
        session.stopped_at, session.stop_reason = req.timestamp, req.reason.value
        self._to(session, Status.STOPPED, now, "SESSION_STOPPED")

    def _on_answer(self, ref: str, conf: msg.InboundConf, now: datetime) -> None:
        for session in self.sessions.values():
            if ref == session.start_ref and isinstance(conf, msg.TransactionStartResult):
                session.transaction_id = (conf.transaction_id if conf.transaction_id
                                          is not None else session.tx_ref)
                if conf.info is not None and conf.info.status is not AuthStatus.ACCEPTED:
                    session.authorization_status = conf.info.status.value
                # The charge point accepted the start: the start notification (§3).
                self._effects.append(Saved(dataclasses.replace(session), start=True))
            elif ref == session.stop_ref and session.status is Status.STOPPED:
                self._to(session, Status.COMPLETE, now, "SESSION_COMPLETE")

    def _withdrawn(self, connector_id: int, id_tag: str) -> None:
        """The core released the token of the FAILED start kept aside on the connector (a
        new start replaces it): that start can no longer resume."""
        session, _ = self._lapsed.get(connector_id, (None, None))
        if session is not None and session.id_tag.lower() == id_tag.lower():
            del self._lapsed[connector_id]

    def _on_plug_timeout(self, connector_id: int, now: datetime) -> None:
        """ConnectionTimeOut: the core dropped the authorization, no EV was plugged in."""
        self._token_wait.pop(connector_id, None)
        self._lapsed.pop(connector_id, None)  # the core dropped the token: the window closed
        session = self._waiting(connector_id)
        if session is not None and session.authorized:
            self._to(session, Status.FAILED, now, "SESSION_FAILED", failure="not_plugged_in")

    def _by_tx(self, tx_ref: int) -> Session | None:
        for session in self.sessions.values():
            if session.tx_ref == tx_ref:
                return session
        return None

    # --- recovery ------------------------------------------------------------------------

    def recover(self, stopped: dict[int, tuple[int, str, datetime, bool]],
                stop_refs: dict[int, str], now: datetime) -> list[Effect]:
        """After a restart: sessions waiting to start failed (the core forgot them); the
        store's transactions say which started ones the recovery stopped (``stopped``:
        tx_ref -> meter_stop, reason, stopped_at, confirmed) and the journal which stop is
        still queued (``stop_refs``: tx_ref -> ref)."""
        for session in list(self.sessions.values()):
            if session.status in (Status.CREATED, Status.WAITING_TO_START):
                self._to(session, Status.FAILED, now, "SESSION_FAILED", failure="restarted")
            elif session.tx_ref is not None and session.tx_ref in stopped:
                meter_stop, reason, at, confirmed = stopped[session.tx_ref]
                session.stop_ref = stop_refs.get(session.tx_ref, session.stop_ref)
                if session.status in (Status.STARTED, Status.WAITING_TO_STOP,
                                      Status.STOP_FAILED):
                    session.meter_stop_wh, session.stop_reason = meter_stop, reason
                    session.stopped_at = at
                    self._to(session, Status.STOPPED, now, "SESSION_STOPPED")
                if confirmed and session.status is Status.STOPPED:
                    self._to(session, Status.COMPLETE, now, "SESSION_COMPLETE")
                else:
                    self._save(session)
        return self._take()

    # --- internals -----------------------------------------------------------------------

    def _to(self, session: Session, status: Status, now: datetime, event: str | None = None,
            failure: str | None = None) -> None:
        if not may_follow(session.status, status):
            raise ValueError(f"session {session.id}: {status} may not follow {session.status}")
        session.status, session.updated_at = status, now
        if failure is not None:
            session.failure = failure
        if status in ENDED or status is Status.STARTED:
            self._effects.append(Timer(f"wait:{session.id}", None))
        if event is not None:
            session.seq += 1
        start = False if status is Status.FAILED else None
        self._effects.append(Saved(dataclasses.replace(session), event, start))

    def _save(self, session: Session) -> None:
        self._effects.append(Saved(dataclasses.replace(session)))

    def _take(self) -> list[Effect]:
        for session_id in [s.id for s in self.sessions.values() if s.status in FINAL]:
            del self.sessions[session_id]
        effects, self._effects = self._effects, []
        return effects


def to_record(session: Session) -> dict[str, object]:
    """The session as JSON-ready values (the store's body, the API's base)."""
    record: dict[str, object] = {}
    for f in dataclasses.fields(session):
        value = getattr(session, f.name)
        record[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return record


def from_record(record: dict[str, object]) -> Session:
    values: dict[str, object] = {}
    for f in dataclasses.fields(Session):
        value = record.get(f.name)
        if f.name.endswith("_at") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values[f.name] = value
    values["status"] = Status(str(values["status"]))
    values["mode"] = Mode(str(values["mode"]))
    values["seq"] = values.get("seq") or 0
    values["authorized"] = bool(values.get("authorized"))
    return Session(**values)  # type: ignore[arg-type]
