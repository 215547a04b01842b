"""The local limit: how a home energy manager, the CLI, the sessions API or a dashboard caps
a connector's current without a CSMS (docs/smart-charging.md).

Every client goes through :func:`set_local_limit`, which hands the core one
:class:`agent.core.events.LocalLimitSet` on the event loop; the core keeps the limit with its
source, and the pilot's offer follows (agent/core/smart_charging.py). ``amps`` 0 pauses
(the transaction goes on, SuspendedEVSE); None clears the local limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agent.core import events as ev
from agent.core.station import Station
from agent.runtime import Runtime

MAX_AMPS = 80.0  # the largest connector.max_current the configuration allows
_SOURCE = re.compile(r"[A-Za-z0-9._:-]{1,32}")


class LimitError(ValueError):
    """The request cannot be applied: ``args[0]`` says why."""


def check(connector_id: int, amps: float | None, source: str, station: Station) -> None:
    """Raise :class:`LimitError` for an unknown connector, a bad amount or source."""
    if connector_id not in station.connectors:
        raise LimitError(f"no connector {connector_id}")
    if amps is not None and not 0 <= amps <= MAX_AMPS:
        raise LimitError(f"amps must be 0..{MAX_AMPS:g} (0 pauses), got {amps:g}")
    if not _SOURCE.fullmatch(source):
        raise LimitError("source must be 1..32 letters, digits or . _ : -")


def set_local_limit(runtime: Runtime, connector_id: int, amps: float | None,
                    source: str) -> dict[str, Any]:
    """Apply the limit now (call on the event loop); returns the connector's view after it."""
    check(connector_id, amps, source, runtime.station)
    runtime.deliver(ev.LocalLimitSet(connector_id, amps, source))
    return limit_view(runtime.station, connector_id)


def set_phases(runtime: Runtime, connector_id: int, phases: int | None,
               source: str) -> dict[str, Any]:
    """Ask the connector's phase relay for ``phases`` (1 or 3; None: the charger decides);
    the switch follows its safety sequence (docs/smart-charging.md). Raises LimitError for
    an unknown connector, one without a phase switch, or a bad value."""
    check(connector_id, None, source, runtime.station)
    if phases not in (1, 3, None):
        raise LimitError(f"phases must be 1 or 3, got {phases}")
    if not runtime.station.connectors[connector_id].phase_switch:
        raise LimitError(f"connector {connector_id} has no phase switch "
                         "(no [connector.phase_switch] in the configuration)")
    runtime.deliver(ev.LocalPhasesSet(connector_id, phases, source))
    return limit_view(runtime.station, connector_id)


def limit_view(station: Station, connector_id: int) -> dict[str, Any]:
    """What limits the connector now: the offer on the pilot, the limit and its source, and
    the phases its relay connects (``phase_switch``: it has one; ``phase_switching`` while a
    switch is under way)."""
    connector = station.connectors[connector_id]
    local = connector.local_limit
    request = connector.phase_request
    return {
        "offered_current": connector.offered,
        "limit_amps": connector.limit_amps,
        "limit_source": connector.limit_source,
        "local_limit": None if local is None else {"amps": local[0], "source": local[1]},
        "phases": connector.active_phases,
        "phase_switch": connector.phase_switch,
        "phase_switching": connector.switching_phases,
        "phase_request": None if request is None else {"phases": request[0],
                                                       "source": request[1]},
    }


def connector_view(station: Station, connector_id: int) -> dict[str, Any]:
    connector = station.connectors[connector_id]
    return {"id": connector_id, "state": connector.lifecycle.state,
            "status": station.status(connector_id).value,
            **limit_view(station, connector_id)}


def parse_words(words: list[str]) -> tuple[int, float | None, str]:
    """``CONNECTOR AMPS|clear|pause|resume [SOURCE]`` (``evse-agent limit``): pause is 0 A,
    clear and resume drop the local limit. Raises LimitError."""
    if len(words) not in (2, 3) or not words[0].isdigit():
        raise LimitError("expected: CONNECTOR AMPS|clear|pause|resume [SOURCE]")
    value = words[1].lower()
    source = words[2] if len(words) == 3 else "cli"
    if value in ("clear", "resume"):
        return int(words[0]), None, source
    if value == "pause":
        return int(words[0]), 0.0, source
    try:
        return int(words[0]), float(value), source
    except ValueError:
        raise LimitError(f"not a number of amps: {words[1]!r}") from None


Request = Callable[[list[str]], dict[str, Any]]


def _refusals_answered(request: Request) -> Request:
    """``request``, with a LimitError answered as ``{"error": why}``."""
    def answer(words: list[str]) -> dict[str, Any]:
        try:
            return request(words)
        except LimitError as error:
            return {"error": str(error)}
    return answer


def command(runtime: Runtime) -> Request:
    """The status socket's ``limit`` request (agent/status_server.py)."""
    def limit(words: list[str]) -> dict[str, Any]:
        connector_id, amps, source = parse_words(words)
        return {"connector": connector_id,
                **set_local_limit(runtime, connector_id, amps, source)}
    return _refusals_answered(limit)


AUTO_WORDS = ("auto", "clear")
"""The words that leave the phases to the charger again (DELETE .../phases in the API)."""


def parse_phases(text: str) -> int | None:
    """``1``, ``3`` or ``auto`` (also ``clear``: None). Raises LimitError."""
    value = text.strip().lower()
    if value in AUTO_WORDS:
        return None
    if value in ("1", "3"):
        return int(value)
    raise LimitError(f"phases must be 1, 3 or auto, got {text!r}")


def parse_phase_words(words: list[str]) -> tuple[int, int | None, str]:
    """``CONNECTOR 1|3|auto [SOURCE]`` (``evse-agent phases``). Raises LimitError."""
    if len(words) not in (2, 3) or not words[0].isdigit():
        raise LimitError("expected: CONNECTOR 1|3|auto [SOURCE]")
    return int(words[0]), parse_phases(words[1]), words[2] if len(words) == 3 else "cli"


def phases_command(runtime: Runtime) -> Request:
    """The status socket's ``phases`` request (agent/status_server.py)."""
    def phases(words: list[str]) -> dict[str, Any]:
        connector_id, wanted, source = parse_phase_words(words)
        return {"connector": connector_id, **set_phases(runtime, connector_id, wanted, source)}
    return _refusals_answered(phases)
