"""What goes on which topic: pure functions over the status snapshot and the session records.

Under the prefix (``mqtt.topic_prefix``, default ``evse-agent/<charger id>``):

- ``availability``: ``online`` / ``offline`` (retained; ``offline`` is also the last will);
- ``link``: the CSMS link, ``online`` / ``offline`` (retained);
- ``connector/<n>/<field>``: one retained topic per field of :func:`connector_state`;
- ``event/session``, ``event/authorization``: JSON events (not retained, dropped while the
  broker is away);
- ``connector/<n>/<command>/set``: commands (:func:`parse_command`), each answered on
  ``connector/<n>/result`` (JSON, not retained).

Nothing here does I/O; :mod:`agent.mqtt.service` publishes what these functions return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.sessions import Session

ON, OFF = "ON", "OFF"
CONNECTED_PILOT = ("B", "C", "D")  # IEC 61851-1: an EV is connected in B, C and D
COMMANDS = ("start", "stop", "current_limit", "charging_enabled", "pause", "resume", "phases")
MIN_AMPS = 6.0  # IEC 61851-1: the lowest current a pilot may offer (0 = pause)
AUTO = "auto"  # phase_request: no local request, the charger decides the phases


def mask(id_tag: str | None, tokens: str) -> str:
    """An id tag as ``mqtt.tokens`` says: full, masked (``***`` + the last 4), or hidden."""
    if not id_tag or tokens == "hidden":
        return ""
    if tokens == "full":
        return id_tag
    return "***" + id_tag[-4:] if len(id_tag) > 4 else "***"


def _kwh(wh: float) -> str:
    return f"{wh / 1000:.3f}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def connector_state(connector: dict[str, Any], session: Session | None,
                    tokens: str) -> dict[str, str]:
    """The retained fields of one connector (``agent.app.status_snapshot``'s entry): field ->
    payload. A field whose value is not known (no meter reading yet) is left out, so the
    topic keeps its last value rather than a made-up one."""
    status = str(connector["status"])
    pilot = str(connector["pilot"])
    tx = connector.get("transaction")
    energy = connector.get("energy_wh")
    state = {
        "status": status,
        "pilot_state": pilot,
        "vehicle_connected": ON if pilot in CONNECTED_PILOT else OFF,
        "charging": ON if status == "Charging" else OFF,
        "contactor": str(connector.get("contactor", "open")),
        "errors": "" if connector.get("error") in (None, "NoError") else str(connector["error"]),
        "session_id": session.id if session is not None else "",
        "token": mask(session.id_tag if session is not None else tx["tag"] if tx else None,
                      tokens),
    }
    if connector.get("power_w") is not None:
        state["power_w"] = _number(float(connector["power_w"]))
    if energy is not None:
        state["meter_total_kwh"] = _kwh(float(energy))
        start = tx.get("meter_start") if tx else None
        state["session_energy_kwh"] = _kwh(max(0.0, float(energy) - start)
                                           if start is not None else 0.0)
    # From smart charging (agent.app.status_snapshot), when the build has it.
    offered = connector.get("offered_current")
    if offered is not None:
        state["offered_current_a"] = _number(float(offered))
    if "limit_amps" in connector:
        limit = connector.get("limit_amps")
        state["current_limit_a"] = "None" if limit is None else _number(float(limit))
        state["charging_enabled"] = OFF if limit is not None and float(limit) == 0 else ON
    if "limit_source" in connector:
        state["limit_source"] = str(connector.get("limit_source") or "none")
    if connector.get("phases") is not None:  # what the phase relay connects (or the wiring)
        state["phases"] = str(int(connector["phases"]))
    if connector.get("phase_switch"):  # a relay: what a local client asked of it
        request = connector.get("phase_request")
        state["phase_request"] = AUTO if request is None else str(int(request["phases"]))
    return state


def station_state(snapshot: dict[str, Any], sessions: dict[int, Session | None],
                  tokens: str) -> dict[str, str]:
    """Every retained state topic below the prefix (not the availability): topic -> payload."""
    topics = {"link": "online" if snapshot["link"]["up"] else "offline"}
    for connector in snapshot["connectors"]:
        cid = int(connector["id"])
        for name, payload in connector_state(connector, sessions.get(cid), tokens).items():
            topics[f"connector/{cid}/{name}"] = payload
    return topics


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def session_event(session: Session, event: str, tokens: str) -> dict[str, Any]:
    """The JSON of ``event/session``: a session event (SESSION_STARTED, ...) of the sessions
    service, with the record's main fields (docs/api.md has the records)."""
    return {
        "event": event, "sequence": session.seq, "session_id": session.id,
        "connector": session.connector_id, "evse_id": session.evse_id,
        "status": session.status.value, "mode": session.mode.value,
        "id_tag": mask(session.id_tag, tokens), "transaction_id": session.transaction_id,
        "started_at": _at(session.started_at), "stopped_at": _at(session.stopped_at),
        "energy_wh": session.energy_wh, "stop_reason": session.stop_reason,
        "failure": session.failure, "timestamp": _at(session.updated_at),
    }


def authorization_event(id_tag: str, connector_id: int, purpose: str, accepted: bool,
                        source: str, status: str | None, reason: str, at: datetime,
                        tokens: str) -> dict[str, Any]:
    """The JSON of ``event/authorization``: one decision of the authorization log."""
    return {"id_tag": mask(id_tag, tokens), "connector": connector_id, "purpose": purpose,
            "accepted": accepted, "source": source, "status": status, "reason": reason,
            "timestamp": at.isoformat()}


# --- commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A command from ``connector/<n>/<name>/set``. ``amps`` None with ``name`` current_limit
    clears the limit; ``phases`` None with ``name`` phases leaves the phases to the charger;
    ``request_id`` is echoed in the result as ``id``."""

    connector_id: int
    name: str
    id_tag: str | None = None
    session_id: str | None = None
    amps: float | None = None
    phases: int | None = None
    request_id: str | None = None


class BadCommand(ValueError):
    """A command the agent cannot read: answered as a 400 ``bad_request`` result."""

    def __init__(self, connector_id: int | None, name: str, details: str) -> None:
        super().__init__(details)
        self.connector_id, self.name, self.details = connector_id, name, details


def command_filter(prefix: str) -> str:
    return f"{prefix}/connector/+/+/set"


def _fields(payload: bytes) -> dict[str, Any] | str:
    text = payload.decode("utf-8", errors="strict").strip()
    if text.startswith(("{", "[")):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("a JSON command must be an object")
        return loaded
    return text


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 36):
        raise ValueError(f"{key} must be a string of 1..36 characters")
    return value


def _amps(value: object, max_current: float) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        amps = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"current must be a number of amps, got {value!r}") from None
    if not (amps == 0 or MIN_AMPS <= amps <= max_current):
        raise ValueError(f"current {_number(amps)} A is out of range; allowed 0 (pause) or "
                         f"{_number(MIN_AMPS)}..{_number(max_current)} A")
    return amps


def _phases(value: object) -> int | None:
    """1 or 3 (a JSON number or text); None for ``auto`` (also ``clear``, JSON null)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 3):
        return value
    if isinstance(value, str) and value.strip().lower() in (AUTO, "clear", "1", "3"):
        text = value.strip().lower()
        return int(text) if text.isdigit() else None
    raise ValueError(f"phases takes 1, 3 or {AUTO}, got {value!r}")


def parse_command(prefix: str, topic: str, payload: bytes,
                  max_current: dict[int, float]) -> Command:
    """The command on ``topic``; BadCommand names what is wrong. Payloads: a JSON object
    (``{"id_tag": ..., "id": ...}``) or plain text (a token for start/stop, amps for
    current_limit, ON/OFF for charging_enabled, 1, 3 or auto for phases)."""
    parts = topic.removeprefix(prefix + "/").split("/")
    if len(parts) != 4 or parts[0] != "connector" or parts[3] != "set":
        raise BadCommand(None, "", f"{topic} is not a command topic")
    name = parts[2]
    cid = int(parts[1]) if parts[1].isascii() and parts[1].isdigit() else None  # not "²"
    if cid not in max_current:
        raise BadCommand(None, name, f"connector {parts[1]} does not exist")
    assert cid is not None
    if name not in COMMANDS:
        raise BadCommand(cid, name, f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    try:
        return _command(cid, name, _fields(payload), max_current[cid])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BadCommand(cid, name, f"malformed payload: {error}") from None
    except ValueError as error:
        raise BadCommand(cid, name, str(error)) from None


def _command(cid: int, name: str, fields: dict[str, Any] | str, max_current: float) -> Command:
    if isinstance(fields, str):
        text = fields
        fields = {}
        if name in ("start", "stop") and text.upper() not in ("", "PRESS"):
            fields["id_tag"] = text
        elif name == "current_limit":
            fields["amps"] = text
        elif name == "charging_enabled":
            fields["state"] = text
        elif name == "phases":
            fields["phases"] = text
    request_id = _text(fields, "id")
    if name == "start":
        id_tag = _text(fields, "id_tag")
        if id_tag is None:
            raise ValueError("start needs a token: the payload, or {\"id_tag\": ...}")
        return Command(cid, name, id_tag=id_tag, request_id=request_id)
    if name == "stop":
        return Command(cid, name, id_tag=_text(fields, "id_tag"),
                       session_id=_text(fields, "session_id"), request_id=request_id)
    if name == "current_limit":
        return Command(cid, name, amps=_amps(fields.get("amps"), max_current),
                       request_id=request_id)
    if name == "phases":
        if "phases" not in fields:
            raise ValueError('phases needs 1, 3 or auto: the payload, or {"phases": ...}')
        return Command(cid, name, phases=_phases(fields["phases"]), request_id=request_id)
    if name == "charging_enabled":
        state = str(fields.get("state", "")).upper()
        if state not in (ON, OFF):
            raise ValueError("charging_enabled takes ON or OFF")
        name = "resume" if state == ON else "pause"
    return Command(cid, name, amps=0.0 if name == "pause" else None, request_id=request_id)


def result(command: str, request_id: str | None, *, ok: bool,
           session: Session | None = None, status: int = 200, kind: str | None = None,
           details: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON of ``connector/<n>/result``. ``status``/``kind``/``details`` are the HTTP
    API's (docs/api.md: the start-error contract's status code, error.type and
    error.details) so a client reads one contract on both."""
    answer: dict[str, Any] = {"command": command, "id": request_id, "ok": ok,
                              "status": status}
    if session is not None:
        answer["session_id"] = session.id
        answer["session_status"] = session.status.value
    if not ok:
        answer["error"] = {"type": kind, "details": details, **(extra or {})}
    return answer
