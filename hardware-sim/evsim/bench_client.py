"""A small client for the bench control API (see :mod:`evsim.bench_api`), stdlib only.

Every method returns the decoded JSON answer, or raises :class:`BenchError` carrying the HTTP
status and the API's error message (``status`` 0 when the world is unreachable).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

JsonObject = dict[str, Any]
DEFAULT_URL = "http://127.0.0.1:8400"


class BenchError(Exception):
    """The bench API refused a request or could not be reached."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status, self.message, self.field = status, message, field


class BenchClient:
    """Drives a simulated world. Thread-safe: each call is one HTTP request."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def state(self) -> JsonObject:
        """The whole site: ``{"connectors": [...], "reader": {...}, "outputs": {...}}``."""
        return self._request("GET", "/api/state")

    def connector(self, connector_id: int) -> JsonObject:
        return self._request("GET", f"/api/connectors/{connector_id}")

    def plug(self, connector_id: int) -> JsonObject:
        return self._request("POST", f"/api/connectors/{connector_id}/plug")

    def unplug(self, connector_id: int) -> JsonObject:
        return self._request("POST", f"/api/connectors/{connector_id}/unplug")

    def ev_state(self, connector_id: int, state: str) -> JsonObject:
        """``state`` "B" (connected, not ready) or "C" (asks for power)."""
        return self._request("POST", f"/api/connectors/{connector_id}/ev", {"state": state})

    def draw(self, connector_id: int, amps: float | None) -> JsonObject:
        """Cap the EV's draw per phase; None lets it draw what it is offered."""
        return self._request("POST", f"/api/connectors/{connector_id}/draw", {"amps": amps})

    def fault(self, connector_id: int, fault: str, active: bool = True) -> JsonObject:
        """Switch ``fault`` on or off; connector 0 for station-wide faults (reader_unplugged)."""
        return self._request(
            "POST", f"/api/connectors/{connector_id}/fault", {"fault": fault, "active": active}
        )

    def present_card(self, uid: str) -> JsonObject:
        """Hold the card with this 32-bit id (8 hex chars, e.g. "00A1B2C3") to the reader."""
        return self._request("POST", "/api/cards", {"uid": uid})

    def _request(self, method: str, path: str, body: JsonObject | None = None) -> JsonObject:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _decode(response.read())
        except urllib.error.HTTPError as exc:
            answer = _decode(exc.read(), strict=False)
            raise BenchError(exc.code, str(answer.get("error", exc.reason)),
                             answer.get("field")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BenchError(0, f"bench API {self.base_url} unreachable: {reason}") from None


def _decode(raw: bytes, *, strict: bool = True) -> JsonObject:
    try:
        value = json.loads(raw)
    except ValueError:
        if strict:
            raise
        return {}
    if not isinstance(value, dict):
        if strict:
            raise ValueError("bench API answered something other than a JSON object")
        return {}
    return value
