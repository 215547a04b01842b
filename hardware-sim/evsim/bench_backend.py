"""What the bench control API drives: the simulated world, or real test equipment.

The HTTP API (:mod:`evsim.bench_api`) is a thin layer over one :class:`BenchBackend`. Two kinds
satisfy it:

- ``world``: :class:`evsim.world.World`, the simulated site, served with its wires by
  :class:`evsim.world_server.WorldServer` (CI, laptops, the demo);
- a class written for one physical bench (an EV simulator with pilot resistors switched by
  relays, a contactor-feedback tap, a card on a servo, ...; docs/bench.md), named
  ``module:Class`` and loaded by :func:`load_backend`.

``evsim bench serve --backend world|module:Class`` serves the same API from either, so a test
that only talks to the API (and to the CSMS) runs unchanged against the simulator and against
a real charger on a bench (tests/bench/).

Contract, for every backend:

- Verbs are idempotent: applying the state a connector is already in succeeds and changes
  nothing, so a harness can re-apply a scenario after any restart.
- Verbs return when the change is made on the wires (a relay switched and settled), and answer
  the connector's new state (:meth:`BenchBackend.connector_state`).
- Arguments arrive as decoded JSON, unchecked: a backend validates them and raises
  :class:`InvalidValueError` naming the field. An unknown connector raises
  :class:`UnknownConnectorError`; a verb the bench cannot do now, or at all (a fault it has no
  relay for, ``draw`` without a controllable load), raises :class:`ConflictError`. The API
  turns these into 400, 404 and 409; anything else becomes 500.
- Methods may be called from several threads at once; a backend serializes them itself.

A connector state is a JSON object with at least these keys (``None`` where the bench cannot
tell)::

    {"id": 1,
     "ev": {"plugged": true, "state": "C"},           # what the bench makes the EV show
     "pilot": "C",                                    # what the bench measures on CP, or None
     "contactor": {"relay_closed": true,              # the coil drive, as the bench sees it
                   "feedback_closed": true},          # the auxiliary contact / load-side tap
     "faults": ["meter_offline"]}                     # the faults now injected

The world adds ``offered_current_a``, ``meter``, ``lock`` and ``rcd``; tests that must also run
on a real bench read only the keys above.

Errors::

    BenchBackendError
     +-- UnknownConnectorError (LookupError)   no such connector          -> HTTP 404
     +-- InvalidValueError (ValueError)        a bad argument, by field   -> HTTP 400
     +-- ConflictError (RuntimeError)          not possible in this state -> HTTP 409
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

JsonObject = dict[str, Any]
WORLD = "world"


class BenchBackendError(Exception):
    """Root of the errors a bench verb raises."""


class UnknownConnectorError(BenchBackendError, LookupError):
    """No connector has that id."""


class InvalidValueError(BenchBackendError, ValueError):
    """An argument is out of range or of the wrong type; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConflictError(BenchBackendError, RuntimeError):
    """The verb makes no sense now (EV state with no EV) or the bench cannot do it at all."""


@runtime_checkable
class BenchBackend(Protocol):
    """The verbs of a test bench. See the module docstring for the contract."""

    def snapshot(self) -> JsonObject:
        """The whole site: ``{"connectors": [<connector state>...], "faults": [...], ...}``."""

    def connector_state(self, connector_id: int) -> JsonObject:
        """One connector; this is how a test reads the relay and its feedback."""

    def plug(self, connector_id: int) -> JsonObject:
        """Connect the EV: pilot B (the EV's 2.74 kOhm + diode on CP; PP resistor if any)."""

    def unplug(self, connector_id: int) -> JsonObject:
        """Disconnect the EV: pilot A."""

    def set_ev_state(self, connector_id: int, state: object) -> JsonObject:
        """The plugged EV shows ``"B"`` (not ready) or ``"C"`` (asks for power)."""

    def set_draw(self, connector_id: int, amps: object) -> JsonObject:
        """Cap what the EV draws per phase (None: no cap); ConflictError without a load."""

    def set_fault(self, connector_id: int, fault: object, active: object) -> JsonObject:
        """Switch a fault on or off; connector 0 takes station-wide faults (reader_unplugged).

        Fault names are those of :data:`evsim.world_config.CONNECTOR_FAULT_NAMES` and
        :data:`evsim.world_config.STATION_FAULT_NAMES`; a bench that cannot inject one raises
        ConflictError.
        """

    def present_card(self, uid: object) -> JsonObject:
        """Hold the card ``uid`` to the reader once; answers at least ``{"uid": ...}``."""


class BackendLoadError(Exception):
    """``module:Class`` does not name a usable backend class."""


def load_backend(spec: str, options: Mapping[str, Any] | None = None) -> BenchBackend:
    """Build the backend ``module:Class`` with ``Class(options)`` (the backend's own settings).

    ``world`` is not loaded here: it needs its wires, which :class:`WorldServer` serves.
    """
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise BackendLoadError(f"backend {spec!r}: expected {WORLD!r} or module:Class")
    try:
        backend_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise BackendLoadError(f"backend {spec!r}: {exc}") from exc
    backend = backend_class(dict(options or {}))
    if not isinstance(backend, BenchBackend):
        raise BackendLoadError(f"backend {spec!r} lacks verbs of evsim.bench_backend.BenchBackend")
    return backend
