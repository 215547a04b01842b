"""The status socket: one JSON document per connection, 0660, stale sockets, clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.status_server import (
    REQUEST_WAIT,
    SocketInUse,
    StatusDenied,
    StatusError,
    StatusServer,
    StatusUnavailable,
    ask,
    default_socket,
    fetch_status,
    format_status,
)

SNAPSHOT: dict[str, Any] = {
    "charger": {"id": "CP-0001", "version": "0.1.0"},
    "link": {"up": True, "registration": "Accepted", "endpoint": "wss://csms.example/CP-0001"},
    "connectors": [
        {"id": 1, "status": "Charging", "phase": "transaction", "pilot": "C",
         "contactor": "closed", "error": "NoError",
         "transaction": {"id": 42, "tag": "04A1B2C3", "started": "2024-05-01T10:02:11Z",
                         "meter_start": 1200},
         "power_w": 7200.0, "energy_wh": 4656.0, "offered_current": 10.0,
         "limit_source": "local:hems"},
        {"id": 2, "status": "Faulted", "phase": "idle", "pilot": "A", "contactor": False,
         "error": "PowerMeterFailure", "transaction": None, "power_w": None, "energy_wh": None},
    ],
    "last_errors": [{"time": "2024-05-01T09:58:00Z", "connector": 2,
                     "text": "PowerMeterFailure: meter did not answer"}],
}


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can come close.
    short = Path(f"/tmp/evse-status-{os.getpid()}-{id(tmp_path)}")
    short.mkdir()
    short.chmod(0o755)  # others may reach the socket: its own mode is what keeps them out
    yield short / "evse-agent.sock"
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


async def fetch(path: Path) -> dict[str, Any]:
    return await asyncio.to_thread(fetch_status, path)


async def test_round_trip(path: Path) -> None:
    calls = []

    def snapshot() -> dict[str, Any]:
        calls.append(1)
        return SNAPSHOT

    async with StatusServer(path, snapshot):
        assert await fetch(path) == SNAPSHOT
        assert await fetch(path) == SNAPSHOT
    assert len(calls) == 2, "a fresh snapshot per connection"
    assert not await asyncio.to_thread(path.exists), "close() removes the socket"


async def test_the_socket_is_mode_0660(path: Path) -> None:
    async with StatusServer(path, lambda: {}):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660


def leave_stale_socket(path: Path) -> None:
    """Bound, never listening: what a kill -9 or a power cut leaves behind."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)


async def test_a_stale_socket_is_replaced(path: Path) -> None:
    leave_stale_socket(path)
    async with StatusServer(path, lambda: {"link": {"up": False}}):
        assert await fetch(path) == {"link": {"up": False}}


async def test_a_live_socket_is_not_taken_over(path: Path) -> None:
    async with StatusServer(path, lambda: {"who": "first"}):
        with pytest.raises(SocketInUse, match="another evse-agent"):
            await StatusServer(path, lambda: {"who": "second"}).start()
        assert await fetch(path) == {"who": "first"}


async def test_a_file_that_is_not_a_socket_is_left_alone(path: Path) -> None:
    await asyncio.to_thread(path.write_text, "precious")
    with pytest.raises(SocketInUse, match="not a socket"):
        await StatusServer(path, lambda: {}).start()
    assert await asyncio.to_thread(path.read_text) == "precious"


async def test_a_failing_snapshot_answers_an_error_and_keeps_serving(path: Path) -> None:
    answers = iter([RuntimeError("no runtime yet"), SNAPSHOT])

    def snapshot() -> dict[str, Any]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with StatusServer(path, snapshot):
        assert await fetch(path) == {"error": "snapshot failed: RuntimeError: no runtime yet"}
        assert await fetch(path) == SNAPSHOT


async def test_values_json_cannot_hold_are_sent_as_text(path: Path) -> None:
    from datetime import UTC, datetime

    async with StatusServer(path, lambda: {"now": datetime(2024, 5, 1, tzinfo=UTC)}):
        assert await fetch(path) == {"now": "2024-05-01 00:00:00+00:00"}


def test_no_agent_gives_a_clear_error(path: Path) -> None:
    with pytest.raises(StatusUnavailable, match=r"the agent is not running: .* does not exist"):
        fetch_status(path)
    leave_stale_socket(path)
    with pytest.raises(StatusUnavailable, match="nothing answers"):
        fetch_status(path)


def test_a_hung_agent_times_out(path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()  # accepts, never answers
    try:
        with pytest.raises(StatusUnavailable, match="did not answer"):
            fetch_status(path, timeout=0.2)
    finally:
        listener.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open any socket")
async def test_permission_denied_is_explained(path: Path) -> None:
    async with StatusServer(path, lambda: {}):
        os.chmod(path, 0o000)
        with pytest.raises(StatusDenied, match="evse-agent group"):
            await fetch(path)


def fetch_as(uid: int, gid: int, path: Path) -> int:
    """fetch_status() in a child process running as ``uid:gid`` (needs root): 0 when it got
    the status, 77 when it was denied, 1 otherwise."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = 0 if fetch_status(path, timeout=5).get("link") else 1
        except StatusDenied:
            code = 77
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_only_the_owner_and_its_group_may_open_the_socket(path: Path) -> None:
    nobody = 65534
    async with StatusServer(path, lambda: SNAPSHOT):
        assert await asyncio.to_thread(fetch_as, nobody, nobody, path) == 77
        assert await asyncio.to_thread(fetch_as, nobody, os.getegid(), path) == 0


def test_permission_denied_message(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(StatusDenied, match="sudo usermod -aG evse-agent"):
        fetch_status(path)


def test_format_status() -> None:
    text = format_status(SNAPSHOT)
    lines = text.splitlines()
    assert lines[0] == ("evse-agent CP-0001 0.1.0: link up to wss://csms.example/CP-0001, "
                        "registration Accepted")
    assert lines[1].split() == ["#", "status", "phase", "pilot", "contactor", "offer", "power",
                                "session", "meter", "transaction"]
    one = lines[2]
    assert one.startswith("1  Charging ")
    for part in ("transaction", "closed", "10 A (local:hems)", "7.20 kW", "3.46 kWh",
                 "4.66 kWh", "id 42", "tag 04A1B2C3", "since 2024-05-01"):
        assert part in one
    assert "Faulted (PowerMeterFailure)" in lines[3]
    assert " open " in lines[3]
    assert lines[4] == "last errors:"
    assert lines[5].endswith("connector 2: PowerMeterFailure: meter did not answer")


def test_format_status_tolerates_a_sparse_document() -> None:
    text = format_status({"connectors": {"1": {"status": "Available"}}, "last_errors": ["x"]})
    assert text.splitlines()[0] == "evse-agent: link unknown, registration none"
    assert text.splitlines()[2].split() == ["1", "Available"] + ["-"] * 8
    assert text.splitlines()[-1] == "  x"
    assert format_status({"error": "snapshot failed"}).splitlines()[1] == "error: snapshot failed"


# --- the command line --------------------------------------------------------------------------


async def test_cli_status_prints_the_table(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with StatusServer(path, lambda: SNAPSHOT):
        code = await asyncio.to_thread(cli.main, ["status", "--socket", str(path)])
    assert code == cli.EXIT_OK
    assert capsys.readouterr().out.startswith("evse-agent CP-0001 0.1.0: link up")


async def test_cli_status_finds_the_socket_in_the_state_dir(
        path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert default_socket(path.parent) == path
    async with StatusServer(path, lambda: SNAPSHOT):
        code = await asyncio.to_thread(
            cli.main, ["status", "--state-dir", str(path.parent), "--json"])
    assert code == cli.EXIT_OK
    assert '"registration": "Accepted"' in capsys.readouterr().out


def test_cli_status_when_the_agent_is_not_running(
        path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--state-dir", str(path.parent)]) == cli.EXIT_UNAVAILABLE
    assert "the agent is not running" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["limit", "1", "10"], ["phases", "1"]])
def test_cli_changes_when_the_agent_is_not_running(
        path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([*command, "--state-dir", str(path.parent)])
    assert code == cli.EXIT_UNAVAILABLE
    (line,) = capsys.readouterr().err.splitlines()
    assert "the agent is not running" in line


async def test_a_named_question_gets_its_answer_and_the_snapshot_stays(path: Path) -> None:
    asked: list[dict[str, Any]] = []

    def rows(request: Any) -> list[str]:
        asked.append(dict(request))
        if request.get("id_tag") == "BROKEN":
            raise ValueError("the store failed")
        return ["a", "b"]

    async with StatusServer(path, lambda: SNAPSHOT, {"authorizations": rows}):
        request = {"ask": "authorizations", "id_tag": "CAFE01"}
        assert await asyncio.to_thread(ask, path, request) == ["a", "b"]
        assert asked == [request]
        with pytest.raises(StatusError, match="cannot answer authorizations: the store failed"):
            await asyncio.to_thread(ask, path, {"ask": "authorizations", "id_tag": "BROKEN"})
        with pytest.raises(StatusError, match="not a request this agent answers"):
            await asyncio.to_thread(ask, path, {"ask": "secrets"})
        assert await fetch(path) == SNAPSHOT  # a client that asks nothing


async def test_an_agent_without_the_question_is_a_clear_error(path: Path) -> None:
    async with StatusServer(path, lambda: SNAPSHOT):  # as an older agent: the snapshot only
        with pytest.raises(StatusError, match="did not answer 'authorizations'"):
            await asyncio.to_thread(ask, path, {"ask": "authorizations", "id_tag": "X"})


async def test_a_client_that_never_ends_its_request_gets_the_snapshot(path: Path) -> None:
    async with StatusServer(path, lambda: SNAPSHOT):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            data = await asyncio.wait_for(reader.read(), REQUEST_WAIT + 10)
        finally:
            writer.close()
        assert json.loads(data) == SNAPSHOT


async def test_the_limit_question_reaches_its_command(path: Path) -> None:
    seen: list[list[str]] = []

    def limit(request: Any) -> dict[str, Any]:
        seen.append(list(request["args"]))
        return {"connector": 1, "limit_amps": 10.0}

    async with StatusServer(path, lambda: SNAPSHOT, {"limit": limit}):
        answer = await asyncio.to_thread(ask, path, {"ask": "limit", "args": ["1", "10", "hems"]})
        document = await fetch(path)
    assert seen == [["1", "10", "hems"]] and answer["limit_amps"] == 10.0
    assert document == SNAPSHOT
