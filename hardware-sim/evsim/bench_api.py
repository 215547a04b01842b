"""The bench control API: HTTP/JSON, a thin layer over one :class:`evsim.bench_backend.BenchBackend`
(the simulated :class:`evsim.world.World`, or a real bench's test equipment).

::

    GET  /api/state                        the whole site
    GET  /api/connectors/{id}              one connector
    POST /api/connectors/{id}/plug         EV plugged in (B)
    POST /api/connectors/{id}/unplug       EV unplugged (A)
    POST /api/connectors/{id}/ev           {"state": "B" | "C"}
    POST /api/connectors/{id}/draw         {"amps": 10 | null}
    POST /api/connectors/{id}/fault        {"fault": "meter_offline", "active": true | false}
    POST /api/cards                        {"uid": "00A1B2C3"}

Every verb is idempotent and answers 200 with the new connector state (cards: what was
presented; faults on connector 0, the station: the station's state). Errors answer
``{"error": "...", "field": "..."?}``: 400 bad JSON or value, 404 unknown connector or path,
405 wrong method, 409 impossible now (EV state with no EV, a fault on hardware not wired).
Served by the stdlib's ThreadingHTTPServer on its own threads; the backend is thread-safe.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evsim.bench_backend import (
    BenchBackend,
    ConflictError,
    InvalidValueError,
    JsonObject,
    UnknownConnectorError,
)
from evsim.world_config import Address

logger = logging.getLogger(__name__)

_CONNECTOR = re.compile(r"/api/connectors/(\d+)(?:/(plug|unplug|ev|draw|fault))?")
_MAX_BODY = 64 * 1024


class _HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class _BenchServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Address, backend: BenchBackend) -> None:
        super().__init__((address.host, address.port), _BenchHandler)
        self.backend = backend


class _BenchHandler(BaseHTTPRequestHandler):
    server: _BenchServer
    server_version = "evsim-bench/1"

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def _get(self) -> JsonObject:
        world = self.server.backend
        if self.path.rstrip("/") == "/api/state":
            return world.snapshot()
        match = _CONNECTOR.fullmatch(self.path.rstrip("/"))
        if match and match.group(2) is None:
            return world.connector_state(int(match.group(1)))
        raise self._not_found_or_wrong_method()

    def _post(self) -> JsonObject:
        world = self.server.backend
        path = self.path.rstrip("/")
        if path == "/api/cards":
            return world.present_card(self._body().get("uid"))
        match = _CONNECTOR.fullmatch(path)
        if not match or match.group(2) is None:
            raise self._not_found_or_wrong_method()
        connector, verb = int(match.group(1)), match.group(2)
        if verb == "plug":
            return world.plug(connector)
        if verb == "unplug":
            return world.unplug(connector)
        body = self._body()
        if verb == "ev":
            return world.set_ev_state(connector, _field(body, "state"))
        if verb == "fault":
            return world.set_fault(connector, _field(body, "fault"), _field(body, "active"))
        return world.set_draw(connector, _field(body, "amps"))

    def _not_found_or_wrong_method(self) -> _HttpError:
        path = self.path.rstrip("/")
        if path in ("/api/state", "/api/cards") or _CONNECTOR.fullmatch(path):
            message = f"{self.command} not allowed on {path}"
            return _HttpError(HTTPStatus.METHOD_NOT_ALLOWED, message)
        return _HttpError(HTTPStatus.NOT_FOUND, f"no such path: {self.path}")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "body too large")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body

    def _respond(self, handler: Any) -> None:
        try:
            self._send(HTTPStatus.OK, handler())
        except _HttpError as exc:
            self._send_error(exc.status, exc.message, exc.field)
        except InvalidValueError as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
        except UnknownConnectorError as exc:
            self._send_error(HTTPStatus.NOT_FOUND, str(exc.args[0]))
        except ConflictError as exc:
            self._send_error(HTTPStatus.CONFLICT, str(exc))
        except Exception as exc:  # a bench API must answer, whatever went wrong
            logger.exception("bench API %s %s failed", self.command, self.path)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _send_error(self, status: HTTPStatus, message: str, field: str | None = None) -> None:
        body: JsonObject = {"error": message}
        if field is not None:
            body["field"] = field
        self._send(status, body)

    def _send(self, status: HTTPStatus, body: JsonObject) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("bench API: " + format, *args)


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise _HttpError(HTTPStatus.BAD_REQUEST, f"missing field {name!r}", name)
    return body[name]


class BenchApi:
    """The bench API server on its own thread. ``address`` is the bound one after start()."""

    def __init__(self, backend: BenchBackend, address: Address) -> None:
        self._server = _BenchServer(address, backend)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="evsim-bench-api", daemon=True
        )

    @property
    def address(self) -> Address:
        host, port = self._server.server_address[:2]
        return Address(str(host), int(port))

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        self._thread.start()
        logger.info("bench API listening on %s", self.url)

    def close(self) -> None:
        """Stop serving and release the port (blocks up to 50 ms). Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
