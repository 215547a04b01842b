"""The OpenAPI 3.1 document of the sessions API, built from :data:`agent.api.server.ROUTES`.

``python -m agent.api.openapi > docs/openapi.json`` writes the checked-in copy; a test keeps
the two equal.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent import __version__
from agent.api.server import BENCH_ROUTES, LIMIT_BODY, ROUTES, START_BODY

_REASONS = {200: "OK", 201: "Created: the session (WAITING_TO_START or STARTED)",
            400: "Bad input (malformed JSON, unknown fields, wrong types)",
            401: "No or unknown bearer token", 402: "Payment error", 403: "Scope too small",
            404: "Not found", 409: "Charging Error (already_charging, "
            "station_availability_issue, ...)", 413: "Body too large",
            424: "Charging Error (station_availability_issue, charging_provider_error)",
            500: "Charging Error (unexpected_error, with a support code)",
            502: "The simulated world's bench API did not answer"}

ERROR = {"type": "object", "required": ["detail"], "properties": {
    "detail": {"type": "string"},
    "error": {"type": "object", "required": ["type", "details"], "properties": {
        "type": {"type": "string"}, "details": {"type": "string"},
        "session_id": {"type": "string"}, "ocpp_status": {"type": "string"},
        "payment_intent_client_secret": {"type": "string"}}}}}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES + BENCH_ROUTES:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "security": [{"bearer": [route.scope]}],
            "responses": {str(code): {"description": _REASONS[code]}
                          for code in route.responses},
        }
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "string"}}
                      for name in re.findall(r"{(\w+)}", route.path)]
        parameters += [{"name": name, "in": "query", "required": False,
                        "schema": {"type": "string"}} for name in route.query]
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": route.body}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    paths["/api/v1/logout"] = {"post": {
        "summary": "Clear the event stream's cookie (no token needed)", "security": [],
        "responses": {"200": {"description": _REASONS[200]}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "evse-agent sessions API", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"StartRequest": START_BODY, "LimitRequest": LIMIT_BODY,
                        "Error": ERROR},
        },
        "paths": paths,
    }


if __name__ == "__main__":
    print(json.dumps(document(), indent=2))
