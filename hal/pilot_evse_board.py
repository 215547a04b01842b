"""Control pilot delegated to an openWB "EVSE DIN / EVSE WB" board over Modbus RTU.

The board generates the PWM, reads the pilot and drops its own relay output on a fault; the
agent polls the vehicle state and writes the offered current (hardware.md §1.5a):

- holding register 1000: configured current in A, 0 = no charging (written with FC16);
- holding register 1002: vehicle state 1 = A, 2 = B, 3 = C, 4 = D, 5 = failure (diode check).

A board that stops answering is as good as a pilot in state E: after ``failure_threshold``
polls in a row fail, the driver reports the error through ``on_failure``, then E through
``on_change`` (so the interlock opens the contactor on the polling thread). The failure goes
first so a receiver knows the E that follows is a stand-in for the lost board, not the EV.

Poll timing: polls start on a fixed schedule, every ``poll_interval`` seconds from the
previous start (not ``poll_interval`` after the previous answer, which would add the Modbus
round trip to every period); a poll that overruns its slot is followed by the next at once,
and missed slots are skipped, not caught up. The period follows what is at stake: while
the EV draws power (C or D), when the pilot leaving C must open the contactor soonest, the
board is polled twice as often; B, E and F at ``poll_interval``. With nothing plugged in
(A) the contactor is open and nothing depends on the poll but noticing the plug: the board
is polled every ``idle_poll_interval`` (0.4 s, or ``poll_interval`` if that is longer), so
a plug-in is seen within 0.4 s plus one round trip, and the idle charger polls its board 2.5
times a second instead of 10 at the default 50 ms (docs/performance.md, idle CPU). A plug-in
straight to C (an EV that skips B) waits for that poll too, with the contactor still open.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable

from hal.callbacks import PilotReports
from hal.errors import ConfigurationError, PilotError
from hal.modbus_bus import ModbusBus
from hal.roles import PilotCallback, PilotState

logger = logging.getLogger(__name__)

REG_CONFIGURED_CURRENT = 1000
REG_VEHICLE_STATE = 1002
MIN_CURRENT_A = 6  # IEC 61851-1: below 6 A the EV may not charge, so 0 is written instead
MAX_CURRENT_A = 80

VEHICLE_STATES = {
    1: PilotState.A,
    2: PilotState.B,
    3: PilotState.C,
    4: PilotState.D,
    5: PilotState.F,  # the board's "failure", e.g. diode check failed
}

FailureCallback = Callable[[BaseException | None], None]
CHARGING_STATES = frozenset({PilotState.C, PilotState.D})
CHARGING_SPEEDUP = 2  # polls per poll_interval while the EV draws power
IDLE_POLL_INTERVAL = 0.4  # seconds between polls with nothing plugged in (at least)


def offered_register_value(amps: float) -> int:
    """The register 1000 value for an offer: whole amps rounded down, 0 below 6 A, max 80 A."""
    if math.isnan(amps) or amps < 0:
        raise ConfigurationError(f"offered current must be >= 0 A, not {amps}")
    whole = min(math.floor(amps), MAX_CURRENT_A)
    return whole if whole >= MIN_CURRENT_A else 0


def poll_period(poll_interval: float, state: PilotState,
                idle_poll_interval: float = IDLE_POLL_INTERVAL) -> float:
    """Seconds between poll starts: ``poll_interval``; shorter while the EV draws power,
    ``idle_poll_interval`` (if longer) with nothing plugged in."""
    if state in CHARGING_STATES:
        return poll_interval / CHARGING_SPEEDUP
    if state is PilotState.A:
        return max(poll_interval, idle_poll_interval)
    return poll_interval


def next_poll(due: float, period: float, now: float) -> float:
    """When the poll after the one that was ``due`` starts: one ``period`` later on the fixed
    schedule, or ``now`` when that moment has passed (missed slots are skipped)."""
    return max(due + period, now)


class EvseBoardPilot:
    """The pilot of one connector as seen through an EVSE board at ``device_id`` on ``bus``.

    ``on_change`` (given to :meth:`start`) and ``on_failure`` run on the polling thread and
    must not block. ``on_failure(exc)`` fires once when the board is declared lost and
    ``on_failure(None)`` once when it answers again. The bus is shared and not closed here.
    """

    def __init__(
        self,
        bus: ModbusBus,
        device_id: int = 1,
        poll_interval: float = 0.05,
        *,
        idle_poll_interval: float = IDLE_POLL_INTERVAL,
        failure_threshold: int = 3,
        on_failure: FailureCallback | None = None,
    ) -> None:
        if poll_interval <= 0 or idle_poll_interval <= 0 or failure_threshold < 1:
            raise ConfigurationError(
                "need poll_interval > 0, idle_poll_interval > 0 and failure_threshold >= 1")
        self._bus = bus
        self._device_id = device_id
        self._poll_interval = poll_interval
        self._idle_poll_interval = idle_poll_interval
        self._reports = PilotReports(f"EVSE board {device_id}", logger, failure_threshold,
                                     on_failure)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def state(self) -> PilotState:
        """The last state reported to ``on_change``; E before the board first answered."""
        return self._reports.state

    async def start(self, on_change: PilotCallback) -> None:
        """Start the polling thread; it reports the first state it reads, then every change."""
        if self._thread is not None or self._closed:
            raise RuntimeError("EvseBoardPilot.start() called twice or after aclose()")
        self._reports.on_change = on_change
        self._thread = threading.Thread(
            target=self._run, name=f"evse-board-{self._device_id}", daemon=True
        )
        self._thread.start()

    async def set_offered_current(self, amps: float) -> None:
        """Write the offer to register 1000; raises PilotError if the board does not take it."""
        value = offered_register_value(amps)
        await self._bus.awrite_registers(
            self._device_id, REG_CONFIGURED_CURRENT, [value], error=PilotError
        )
        logger.debug("EVSE board %s: offering %s A", self._device_id, value)

    async def aclose(self) -> None:
        """Stop polling and write 0 A (best effort: a silent board is only logged). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        try:
            await self.set_offered_current(0)
        except PilotError as exc:
            logger.warning("EVSE board %s: could not withdraw the offer: %s", self._device_id, exc)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._poll_once()
            period = poll_period(self._poll_interval, self._reports.state,
                                 self._idle_poll_interval)
            due = next_poll(due, period, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def _poll_once(self) -> None:
        try:
            state = self._read_state()
        except PilotError as exc:
            self._reports.failed(exc)
            return
        self._reports.answered()
        self._reports.report(state)

    def _read_state(self) -> PilotState:
        (code,) = self._bus.read_holding_registers(
            self._device_id, REG_VEHICLE_STATE, 1, error=PilotError
        )
        try:
            return VEHICLE_STATES[code]
        except KeyError:
            raise PilotError(f"EVSE board {self._device_id}: vehicle state {code}?") from None
