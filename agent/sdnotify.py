"""A tiny sd_notify(3) client: tell systemd that the agent is ready, alive or stopping.

systemd passes the address of its notification socket in ``$NOTIFY_SOCKET`` (a path, or a name
in the abstract namespace written with a leading ``@``). Without it, when the agent is not run
by systemd, as on a laptop or in tests, every call is a silent no-op that returns False. A send
that fails is logged at debug level and returns False too: systemd being unreachable must never
take the charger down.

The unit (``systemd/evse-agent.service``) is ``Type=notify`` with ``WatchdogSec=``. Send
``READY=1`` once the hardware is in a safe state (contactors forced open, drivers running), not
after the CSMS answers: the charger works offline. Run :func:`watchdog_loop` as a task on the
event loop so that a hung loop stops the pings and systemd restarts the unit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def notify(message: str) -> bool:
    """Send ``message`` (newline-separated ``KEY=value`` lines) to systemd.

    Returns True when the datagram was sent, False when there is no ``$NOTIFY_SOCKET`` or the
    send failed. Never raises.
    """
    address = _socket_address(os.environ.get(NOTIFY_SOCKET, ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify %r to %r failed: %s", message, address, exc)
        return False
    return True


def _socket_address(value: str) -> str | None:
    """The address to connect to: a path, or an abstract name (``@x`` becomes ``\\0x``)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, or a kind this client does not speak (vsock:…)


def ready(status_text: str | None = None) -> bool:
    """``READY=1``: start-up is complete; systemd starts the units ordered after this one."""
    if status_text is None:
        return notify("READY=1")
    return notify(f"READY=1\nSTATUS={_one_line(status_text)}")


def stopping() -> bool:
    """``STOPPING=1``: the ordered shutdown has begun."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """``STATUS=text``: one line that ``systemctl status evse-agent`` shows."""
    return notify(f"STATUS={_one_line(text)}")


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment in the datagram.
    return " ".join(text.splitlines())


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``.

    None when the watchdog is off: ``$WATCHDOG_USEC`` unset or not a positive integer, or
    ``$WATCHDOG_PID`` set to another process (the watchdog is meant for that one).
    """
    pid = os.environ.get(WATCHDOG_PID)
    if pid is not None and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get(WATCHDOG_USEC, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


async def watchdog_loop(interval: float, alive: Callable[[], bool]) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds while ``alive()`` is true, until cancelled.

    The pings come from the event loop, so a blocked loop stops them. ``alive()`` adds what the
    loop cannot see (e.g. the pilot poller's thread has died): while it is false no ping is
    sent, and if it stays false for ``WatchdogSec=`` systemd kills and restarts the unit.
    ``alive()`` runs on the loop and must be quick.
    """
    healthy = True
    while True:
        if alive():
            notify("WATCHDOG=1")
            if not healthy:
                log.warning("watchdog: alive again, pings resumed")
            healthy = True
        elif healthy:
            log.error("watchdog: not alive; pings withheld until it recovers")
            healthy = False
        await asyncio.sleep(interval)
