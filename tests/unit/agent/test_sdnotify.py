"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import sdnotify


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound in tmp_path and named in $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(1.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, without blocking."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(1.0)


def test_ready_stopping_and_status_reach_the_socket(systemd_socket: socket.socket) -> None:
    assert sdnotify.ready()
    assert sdnotify.status("1 connector, CSMS offline")
    assert sdnotify.stopping()
    assert received(systemd_socket) == ["READY=1", "STATUS=1 connector, CSMS offline", "STOPPING=1"]


def test_ready_can_carry_a_status(systemd_socket: socket.socket) -> None:
    assert sdnotify.ready("charging ready")
    assert received(systemd_socket) == ["READY=1\nSTATUS=charging ready"]


def test_status_is_kept_on_one_line(systemd_socket: socket.socket) -> None:
    # A newline would start a new assignment: "READY=1" smuggled in a status must not count.
    sdnotify.status("meter failed\nREADY=1")
    assert received(systemd_socket) == ["STATUS=meter failed READY=1"]


def test_abstract_namespace_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"evse-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("value", [None, "", "@", "relative/path", "vsock:2:1234"])
def test_without_a_usable_socket_every_call_is_a_quiet_no_op(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert sdnotify.ready() is False
    assert sdnotify.stopping() is False
    assert sdnotify.status("x") is False


def test_a_socket_nobody_listens_on_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.notify("WATCHDOG=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("10000000", None, 5.0),
        ("10000000", "self", 5.0),
        ("10000000", "other", None),
        (None, None, None),
        ("", None, None),
        ("ten", None, None),
        ("0", None, None),
        ("-5", None, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            own = str(os.getpid())
            monkeypatch.setenv(key, {"self": own, "other": own + "0"}.get(value, value))
    assert sdnotify.watchdog_interval() == expected


async def test_watchdog_pings_only_while_alive(systemd_socket: socket.socket) -> None:
    healthy = True
    task = asyncio.create_task(sdnotify.watchdog_loop(0.01, lambda: healthy))
    await asyncio.sleep(0.1)
    pings_alive = len(received(systemd_socket))
    healthy = False
    await asyncio.sleep(0.03)  # a ping already on its way may still arrive
    received(systemd_socket)
    await asyncio.sleep(0.1)
    pings_dead = len(received(systemd_socket))
    healthy = True
    await asyncio.sleep(0.1)
    pings_again = received(systemd_socket)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pings_alive >= 3
    assert pings_dead == 0
    assert pings_again and set(pings_again) == {"WATCHDOG=1"}


def hang_the_loop(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_blocked_loop_sends_no_pings(systemd_socket: socket.socket) -> None:
    task = asyncio.create_task(sdnotify.watchdog_loop(0.01, lambda: True))
    await asyncio.sleep(0.05)
    received(systemd_socket)
    hang_the_loop(0.1)  # nothing else runs on the loop: nothing can ping
    assert received(systemd_socket) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
