"""The local sessions API over HTTP: aiohttp, JSON, versioned paths under ``/api/v1``.

Every route is one row of :data:`ROUTES` (method, path, scope, handler, its OpenAPI words);
adding an endpoint is a handler and a row. Every request needs ``Authorization: Bearer
<token>``: 401 without a known one, 403 when its scope is too small (read < control). The
start answers the reference's error contract (``../shared/reference/sessions-api.md`` §1).

aiohttp: the server-side ``web.Application``, ``web.AppRunner`` and ``web.TCPSite``, and
``client_max_size`` (413 for larger bodies), as in its "Low Level Server" and "Web Server
Advanced" documentation. Only this package (agent.api) imports aiohttp. With the agent's
views (:class:`AgentViews`) the same application also serves the dashboard
(:mod:`agent.api.dashboard`) and its read-only routes: status, configuration (masked), OCPP
message log, CSV export, and in simulation the bench controls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from agent import clock
from agent.api import export
from agent.api.auth import STREAM_COOKIE, TICKET_SECONDS, StreamTickets, Tokens
from agent.api.bench import VERBS, BenchProxy, BenchUnreachable
from agent.api.dashboard import add_dashboard
from agent.api.service import SessionService, StartError, UnexpectedError
from agent.frame_log import FrameLog
from agent.local_limit import LimitError
from agent.sessions import Session, Status

log = logging.getLogger(__name__)

Handler = Callable[["Api", web.Request], Awaitable[web.StreamResponse]]
PAGE_MAX = 200
NOT_FOUND_EVSE = "Station with this evse id was not found"
EVENT_QUEUE = 256  # changes kept for a slow event-stream client
MAX_BODY = web.AppKey("max_body", int)
CSV_PAGE = 500  # sessions read from the store at a time for the CSV export
FRAMES_MAX = 1000


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str  # read | control
    handler: Handler
    summary: str
    responses: tuple[int, ...] = (200,)
    body: dict[str, Any] | None = None  # the JSON schema of the request body
    query: tuple[str, ...] = ()
    ticket: bool = False  # also opened by the login cookie (the browser's EventSource)


@dataclass(frozen=True)
class AgentViews:
    """What the dashboard shows beyond the sessions, read from the running agent:
    ``status`` (agent.app.status_snapshot), ``config`` (secrets masked, as in the diagnostics
    bundle), ``frames`` (the OCPP message log, None when it could not be opened) and the
    simulated world's bench (None on a real charger)."""

    status: Callable[[], dict[str, Any]]
    config: Callable[[], dict[str, Any]]
    frames: Callable[[], FrameLog | None]
    bench: BenchProxy | None = None


class BadRequest(Exception):
    pass


def problem(status: int, detail: str, kind: str | None = None, details: str = "",
            **extra: Any) -> web.Response:
    body: dict[str, Any] = {"detail": detail}
    if kind is not None:
        body["error"] = {"type": kind, "details": details, **extra}
    return web.json_response(body, status=status)


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration: PT21.379S, PT15M, PT1H2M3S."""
    whole_minutes, secs = divmod(round(seconds, 3), 60)
    hours, minutes = divmod(int(whole_minutes), 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or text == "PT":
        text += f"{secs:.3f}".rstrip("0").rstrip(".") + "S"
    return text


def session_view(session: Session, now: datetime) -> dict[str, Any]:
    end = session.stopped_at or now
    energy = session.energy_wh
    return {
        "sessionId": session.id,
        "sessionStatus": session.status.value,
        "evseId": session.evse_id,
        "connectorId": session.connector_id,
        "idTag": session.id_tag,
        "mode": session.mode.value,
        "createdAt": session.created_at.isoformat(),
        "startTime": session.started_at.isoformat() if session.started_at else None,
        "duration": (iso_duration((end - session.started_at).total_seconds())
                     if session.started_at else None),
        "energy": {"unit": "WH", "value": energy} if energy is not None else None,
        "transactionId": session.transaction_id,
        "stopReason": session.stop_reason,
        "failure": session.failure,
        "sequence": session.seq,
        "amount": session.amount,
    }


BENCH_EV_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["state"],
    "properties": {"state": {"type": "string", "minLength": 1, "maxLength": 1}},
}
BENCH_CARD_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["uid"],
    "properties": {"uid": {"type": "string", "minLength": 1, "maxLength": 20}},
}

START_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["evse_id", "id_tag"],
    "properties": {
        "evse_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "id_tag": {"type": "string", "minLength": 1, "maxLength": 20},
        "connector_id": {"type": "integer", "minimum": 1},
    },
}


PHASES_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["phases"],
    "properties": {
        "phases": {"type": "integer", "minimum": 1, "maximum": 3},  # 1 or 3: local_limit
        "source": {"type": "string", "minLength": 1, "maxLength": 32},
    },
}

LIMIT_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["amps"],
    "properties": {
        "amps": {"type": "number", "minimum": 0, "maximum": 80},
        "source": {"type": "string", "minLength": 1, "maxLength": 32},
    },
}


def _check_body(raw: object, schema: dict[str, Any]) -> dict[str, Any]:
    """The few JSON-schema rules the API's bodies use, with a clear message for each."""
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object")
    allowed = schema["properties"]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    for name in schema["required"]:
        if name not in raw:
            raise BadRequest(f"{name} is required")
    for name, rule in allowed.items():
        if name not in raw:
            continue
        value = raw[name]
        if rule["type"] == "string" and not (
                isinstance(value, str) and rule["minLength"] <= len(value) <= rule["maxLength"]):
            raise BadRequest(f"{name} must be a string of {rule['minLength']}.."
                             f"{rule['maxLength']} characters")
        if rule["type"] == "integer" and (isinstance(value, bool) or not isinstance(value, int)
                                          or value < rule["minimum"]):
            raise BadRequest(f"{name} must be an integer >= {rule['minimum']}")
        if rule["type"] == "number" and (isinstance(value, bool)
                                         or not isinstance(value, int | float)
                                         or not rule["minimum"] <= value <= rule["maximum"]):
            raise BadRequest(f"{name} must be a number {rule['minimum']}..{rule['maximum']}")
    return raw


async def _json(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    text = await request.text()
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    return _check_body(raw, schema)


def _time_arg(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _session_filters(request: web.Request) -> dict[str, Any]:
    """``id_tag``, ``status``, ``from`` and ``to`` of the history's query, checked."""
    status = request.query.get("status") or None
    if status is not None and status not in Status.__members__:
        raise BadRequest(f"status must be one of {', '.join(Status.__members__)}")
    return {"id_tag": request.query.get("id_tag") or None, "status": status,
            "since": _time_arg(request, "from"), "until": _time_arg(request, "to")}


def _int_arg(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, str(default))
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer {low}..{high}, got {text!r}")
    return int(text)


class Api:
    """The routes' handlers over a :class:`SessionService`."""

    def __init__(self, service: SessionService, tokens: Tokens, charger_id: str,
                 views: AgentViews | None = None) -> None:
        self.service = service
        self.tokens = tokens
        self.charger_id = charger_id
        self.views = views
        self.tickets = StreamTickets()

    async def start_session(self, request: web.Request) -> web.Response:
        body = await _json(request, START_BODY)
        connector_id = self.service.connector_of(body["evse_id"])
        if connector_id is None or body.get("connector_id", connector_id) != connector_id:
            return problem(404, NOT_FOUND_EVSE)
        try:
            session, error = await self.service.start(connector_id, body["id_tag"])
        except UnexpectedError as failure:
            return problem(500, "Charging Error", "unexpected_error",
                           f"We faced unexpected error. Code: {failure.code}")
        if error is not None:
            return self._start_error(error, session)
        return web.json_response(session_view(session, clock.now().utc), status=201)

    def _start_error(self, error: StartError, session: Session) -> web.Response:
        if error.kind is None:
            return problem(error.status, error.details)
        detail = "Payment error" if error.status == 402 else "Charging Error"
        return problem(error.status, detail, error.kind, error.details,
                       session_id=session.id, **(error.extra or {}))

    async def get_session(self, request: web.Request) -> web.Response:
        session = self.service.get(request.match_info["session_id"])
        if session is None:
            return problem(404, "Session not found")
        return web.json_response(session_view(session, clock.now().utc))

    async def list_sessions(self, request: web.Request) -> web.Response:
        filters = _session_filters(request)
        limit = _int_arg(request, "limit", 50, 1, PAGE_MAX)
        offset = _int_arg(request, "offset", 0, 0, 1 << 31)
        total, page = self.service.query(**filters, limit=limit, offset=offset)
        now = clock.now().utc
        return web.json_response({"total": total, "limit": limit, "offset": offset,
                                  "sessions": [session_view(s, now) for s in page]})

    async def sessions_csv(self, request: web.Request) -> web.StreamResponse:
        """Every session the filters of ``GET /sessions`` select, newest first, as CSV
        (columns: :data:`agent.api.export.CSV_COLUMNS`), read from the store a page at a
        time."""
        filters = _session_filters(request)
        now = clock.now().utc
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="sessions-{stamp}.csv"'})
        await response.prepare(request)
        lines = export.CsvLines()
        await response.write(lines.header().encode())
        offset = 0
        while True:  # a page at a time: the whole history never sits in memory
            _, page = self.service.query(**filters, limit=CSV_PAGE, offset=offset)
            rows = "".join(lines.row(session_view(s, now)) for s in page)
            await response.write(rows.encode())
            offset += len(page)
            if len(page) < CSV_PAGE:
                break
        await response.write_eof()
        return response

    async def stop_session(self, request: web.Request) -> web.Response:
        session = self.service.get(request.match_info["session_id"])
        if session is None:
            return problem(404, "Session not found")
        session, refused = self.service.stop(session)
        if refused is not None:
            return problem(409, "Charging Error", "session_not_stoppable", refused)
        return web.json_response(session_view(session, clock.now().utc))

    async def list_authorizations(self, request: web.Request) -> web.Response:
        rows = self.service.authorizations(request.query.get("id_tag"),
                                           _time_arg(request, "since"))
        return web.json_response({"authorizations": rows})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: one ``session`` event per change of a record, as JSON (the
        session view with ``event``: SESSION_STARTED, ... or null for a minor change)."""
        queue: asyncio.Queue[tuple[Session, str | None]] = asyncio.Queue(EVENT_QUEUE)

        def listener(session: Session, event: str | None) -> None:
            if queue.full():  # a client that does not read loses events, never the agent
                queue.get_nowait()
            queue.put_nowait((session, event))

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        self.service.listeners.append(listener)
        try:
            await response.write(b": connected\n\n")
            while True:
                session, event = await queue.get()
                data = json.dumps({**session_view(session, clock.now().utc), "event": event})
                await response.write(f"event: session\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.service.listeners.remove(listener)
        return response

    async def login(self, request: web.Request) -> web.Response:
        """The bearer token was checked by the guard: set the event stream's ticket."""
        scope = self._scope(request) or "read"
        response = web.json_response({"scope": scope, "charger": self.charger_id})
        response.set_cookie(STREAM_COOKIE, self.tickets.issue(scope, clock.now().utc.timestamp()),
                            max_age=TICKET_SECONDS, path="/api/v1/events", httponly=True,
                            samesite="Strict")
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.json_response({})
        response.del_cookie(STREAM_COOKIE, path="/api/v1/events")
        return response

    async def status(self, request: web.Request) -> web.Response:
        """The status snapshot, each connector with the EVSE id a start names."""
        snapshot = self._views().status()
        for connector in snapshot.get("connectors", []):
            connector["evse_id"] = self.service.evse_ids.get(connector["id"])
        snapshot["bench"] = self._views().bench is not None
        return web.json_response(snapshot)

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(self._views().config())

    async def frames(self, request: web.Request) -> web.Response:
        """The OCPP message log, newest first: ``q`` searches the stored JSON (action, idTag,
        payload, event text) without case; the other filters are ``evse-agent log``'s."""
        frame_log = self._views().frames()
        if frame_log is None:
            return problem(404, "No OCPP message log", "not_found",
                           "the message log could not be opened at start-up")
        connector = request.query.get("connector")
        if connector is not None and not connector.isdigit():
            raise BadRequest(f"connector must be a number, got {connector!r}")
        limit = _int_arg(request, "limit", 200, 1, FRAMES_MAX)
        action = request.query.get("action") or None
        id_tag = request.query.get("id_tag") or None
        since, until = _time_arg(request, "since"), _time_arg(request, "until")
        records = await asyncio.to_thread(
            frame_log.query, since, until, int(connector) if connector else None, id_tag,
            action)
        found = export.search_frames(records, request.query.get("q") or None, limit)
        return web.json_response({"records": found})

    async def bench_state(self, request: web.Request) -> web.Response:
        return await self._bench("GET", "/api/state")

    async def bench_connector(self, request: web.Request) -> web.Response:
        verb = request.match_info["verb"]
        if verb not in VERBS:
            return problem(404, "Not found", "not_found", f"bench verbs: {', '.join(VERBS)}")
        body = await _json(request, BENCH_EV_BODY) if verb == "ev" else None
        return await self._bench(
            "POST", f"/api/connectors/{request.match_info['connector_id']}/{verb}", body)

    async def bench_card(self, request: web.Request) -> web.Response:
        return await self._bench("POST", "/api/cards", await _json(request, BENCH_CARD_BODY))

    async def _bench(self, method: str, path: str, body: dict[str, Any] | None = None
                     ) -> web.Response:
        bench = self._views().bench
        if bench is None:  # not registered then; kept for a direct call
            return problem(404, "Not found")
        try:
            status, answer = await bench.call(method, path, body)
        except BenchUnreachable as error:
            return problem(502, "Bench unreachable", "bench_unreachable", str(error))
        return web.json_response(answer, status=status)

    def _views(self) -> AgentViews:
        if self.views is None:
            raise RuntimeError("this API was built without the agent's views")
        return self.views

    def _scope(self, request: web.Request) -> str | None:
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.tokens.scope_of(token.strip()) if kind.lower() == "bearer" else None
    # --- the local limit (docs/smart-charging.md) ---------------------------------------

    async def list_connectors(self, request: web.Request) -> web.Response:
        return web.json_response({"connectors": self.service.connectors()})

    async def set_limit(self, request: web.Request) -> web.Response:
        body = await _json(request, LIMIT_BODY)
        return self._limit(request, float(body["amps"]), body.get("source", "api"))

    async def clear_limit(self, request: web.Request) -> web.Response:
        return self._limit(request, None, request.query.get("source", "api"))

    async def pause(self, request: web.Request) -> web.Response:
        return self._limit(request, 0.0, request.query.get("source", "api"))

    async def resume(self, request: web.Request) -> web.Response:
        return self._limit(request, None, request.query.get("source", "api"))

    async def set_phases(self, request: web.Request) -> web.Response:
        body = await _json(request, PHASES_BODY)
        phases = int(body["phases"])
        return self._connector_change(request, lambda cid: self.service.set_phases(
            cid, phases, body.get("source", "api")))

    async def clear_phases(self, request: web.Request) -> web.Response:
        source = request.query.get("source", "api")
        return self._connector_change(request, lambda cid: self.service.set_phases(
            cid, None, source))

    def _limit(self, request: web.Request, amps: float | None, source: str) -> web.Response:
        return self._connector_change(request, lambda cid: self.service.set_local_limit(
            cid, amps, source))

    def _connector_change(self, request: web.Request,
                          change: Callable[[int], dict[str, Any]]) -> web.Response:
        text = request.match_info["connector_id"]
        if not text.isdigit() or int(text) not in {c["id"] for c in self.service.connectors()}:
            return problem(404, "Connector not found")
        try:
            view = change(int(text))
        except LimitError as error:
            raise BadRequest(str(error)) from None
        return web.json_response({"id": int(text), **view})

    async def openapi(self, request: web.Request) -> web.Response:
        from agent.api.openapi import document
        return web.json_response(document())


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/sessions/start", "control", Api.start_session,
          "Start charging: always creates a session (even when the start fails)",
          (201, 400, 401, 402, 403, 404, 409, 413, 424, 500), START_BODY),
    Route("GET", "/api/v1/sessions", "read", Api.list_sessions,
          "Session history, newest first, filtered and paged", (200, 400, 401),
          query=("id_tag", "status", "from", "to", "limit", "offset")),
    Route("GET", "/api/v1/sessions/{session_id}", "read", Api.get_session,
          "One session", (200, 401, 404)),
    Route("POST", "/api/v1/sessions/{session_id}/stop", "control", Api.stop_session,
          "Stop a session (idempotent: 200 on an already stopped one)",
          (200, 401, 403, 404, 409)),
    Route("GET", "/api/v1/authorizations", "read", Api.list_authorizations,
          "Authorization decisions with their source and reason", (200, 400, 401),
          query=("id_tag", "since")),
    Route("GET", "/api/v1/sessions.csv", "read", Api.sessions_csv,
          "Session history as CSV (the filters of GET /api/v1/sessions, every page)",
          (200, 400, 401), query=("id_tag", "status", "from", "to")),
    Route("GET", "/api/v1/events", "read", Api.events,
          "Live stream of session changes (Server-Sent Events, event: session); a browser "
          "may present the cookie POST /api/v1/login sets instead of the bearer token",
          (200, 401), ticket=True),
    Route("POST", "/api/v1/login", "read", Api.login,
          "Check the bearer token and set the event stream's cookie (HttpOnly, SameSite "
          "Strict, path /api/v1/events, 12 h)", (200, 401)),
    Route("GET", "/api/v1/status", "read", Api.status,
          "The charger: connectors (state, power, energy), CSMS link, last errors", (200, 401)),
    Route("GET", "/api/v1/config", "read", Api.config,
          "The validated configuration, every secret masked", (200, 401)),
    Route("GET", "/api/v1/frames", "read", Api.frames,
          "The OCPP message log, newest first; q searches it", (200, 400, 401, 404),
          query=("q", "action", "id_tag", "connector", "since", "until", "limit")),
    Route("GET", "/api/v1/connectors", "read", Api.list_connectors,
          "Connectors: state, status, offered current, limit and the source limiting it",
          (200, 401)),
    Route("PUT", "/api/v1/connectors/{connector_id}/limit", "control", Api.set_limit,
          "Set the local current limit (0 pauses; source defaults to api)",
          (200, 400, 401, 403, 404), LIMIT_BODY),
    Route("PUT", "/api/v1/connectors/{connector_id}/phases", "control", Api.set_phases,
          "Ask for 1 or 3 phases through the connector's phase relay (the EV is paused "
          "during the switch; 400 without a relay)", (200, 400, 401, 403, 404), PHASES_BODY),
    Route("DELETE", "/api/v1/connectors/{connector_id}/phases", "control", Api.clear_phases,
          "Leave the phases to the charger again", (200, 400, 401, 403, 404),
          query=("source",)),
    Route("DELETE", "/api/v1/connectors/{connector_id}/limit", "control", Api.clear_limit,
          "Clear the local current limit", (200, 401, 403, 404), query=("source",)),
    Route("POST", "/api/v1/connectors/{connector_id}/pause", "control", Api.pause,
          "Pause charging (local limit 0 A; the transaction goes on, SuspendedEVSE)",
          (200, 401, 403, 404), query=("source",)),
    Route("POST", "/api/v1/connectors/{connector_id}/resume", "control", Api.resume,
          "Resume charging (clears the local limit)", (200, 401, 403, 404),
          query=("source",)),
    Route("GET", "/api/v1/openapi.json", "read", Api.openapi, "This document", (200, 401)),
)

OPEN_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/api/v1/logout", Api.logout),  # only clears the cookie: no token needed
)

BENCH_ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/bench/state", "read", Api.bench_state,
          "Simulation only: the simulated site's state (the bench API's /api/state)",
          (200, 401, 502)),
    Route("POST", "/api/v1/bench/connectors/{connector_id}/{verb}", "control",
          Api.bench_connector, "Simulation only: plug, unplug, or set the EV state (B, C)",
          (200, 400, 401, 403, 404, 409, 502), BENCH_EV_BODY),
    Route("POST", "/api/v1/bench/cards", "control", Api.bench_card,
          "Simulation only: present a card to the reader", (200, 400, 401, 403, 502),
          BENCH_CARD_BODY),
)


def _guarded(api: Api, route: Route
             ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        scope = api._scope(request)
        ticket = request.cookies.get(STREAM_COOKIE)
        if scope is None and route.ticket and ticket:
            scope = api.tickets.scope_of(ticket, clock.now().utc.timestamp())
        if scope is None:
            response = problem(401, "Not authenticated")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if route.scope == "control" and scope != "control":
            return problem(403, "This token may only read (scope read)")
        try:
            return await route.handler(api, request)
        except BadRequest as error:
            return problem(400, "Invalid request", "invalid_request", str(error))
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "Request body too large", "invalid_request",
                           f"at most {request.app[MAX_BODY]} bytes")
        except web.HTTPException:
            raise  # aiohttp's own answers (405 and the like)
        except Exception as error:  # every route keeps the error contract
            code = str(uuid.uuid4())
            log.exception("sessions API: %s %s failed: %s (support code %s)",
                          request.method, request.path, error, code)
            return problem(500, "Unexpected error", "unexpected_error",
                           f"We faced unexpected error. Code: {code}")
    return handle


class ApiServer:
    def __init__(self, api: Api, host: str, port: int, max_body: int) -> None:
        self.api = api
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=max_body)
        self.app[MAX_BODY] = max_body
        for route in ROUTES + (BENCH_ROUTES if api.views and api.views.bench else ()):
            self.app.router.add_route(route.method, route.path, _guarded(api, route))
        for method, path, handler in OPEN_ROUTES:
            self.app.router.add_route(method, path, partial(handler, api))
        if api.views is not None:
            add_dashboard(self.app)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        # Open event streams are cut after 1 s at shutdown (aiohttp "Graceful shutdown").
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("sessions API: listening on http://%s:%s/api/v1", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
