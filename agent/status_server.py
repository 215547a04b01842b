"""``evse-agent status``: the running agent's state over a local Unix socket.

The agent runs a :class:`StatusServer`; every connection gets one JSON document, the result
of ``snapshot()`` taken on the event loop at that moment, and is closed. The client side is
:func:`fetch_status` (blocking, for the command line) and :func:`format_status`.

A client may instead ask one named question: it writes one line of JSON, ``{"ask": NAME,
...}``, and the server answers ``{"ask": NAME, "answer": ...}`` from ``answers[NAME]``:
``authorizations`` for ``evse-agent log --id-tag`` (the running agent holds its database
exclusively, so the command line cannot read it), ``limit`` for ``evse-agent limit`` and
``phases`` for ``evse-agent phases`` (so whoever may open the socket may set the local limit
and ask for phases: the 0660 rule below is the access rule for all of them). The client
shuts its writing side after its line, or at once when it wants the snapshot; a client that
does neither gets the snapshot after :data:`REQUEST_WAIT`. The client side is :func:`ask`.

Access: the socket file is mode 0660, so only root and members of the service's group (its
owner's primary group; ``evse-agent`` under systemd) can connect, and its directory should
let them reach it (the unit's state directory is 0750). A socket file left by a crashed
agent is removed at start; one that still answers means another agent runs, and
:class:`SocketInUse` is raised.

The snapshot, as the runtime provides it (every field may be missing or null)::

    {
      "charger": {"id": "CP-0001", "version": "0.1.0"},
      "link": {"up": true, "registration": "Accepted", "endpoint": "wss://…/CP-0001"},
      "connectors": [
        {"id": 1, "status": "Charging", "phase": "transaction", "pilot": "C",
         "contactor": "closed", "error": "NoError",
         "transaction": {"id": 42, "tag": "04A1B2C3", "started": "2024-05-01T10:02:11Z",
                         "meter_start": 1200},
         "power_w": 7200.0, "energy_wh": 4656.0,
         "offered_current": 16.0, "limit_amps": 16.0, "limit_source": "hardware",
         "local_limit": null, "phases": 3, "phase_switch": false}
      ],
      "last_errors": [{"time": "2024-05-01T09:58:00Z", "level": "ERROR", "connector": 1,
                       "text": "agent.runtime: meter did not answer"}]
    }

``energy_wh`` is the meter's register; the session energy shown is ``energy_wh`` minus the
transaction's ``meter_start``. ``connectors`` may also be an object keyed by connector id.
``last_errors`` is what :class:`agent.logs.RecentProblems` keeps; entries may also be plain
strings.

Errors::

    StatusError
     ├── StatusUnavailable (ConnectionError)  no agent answers on the socket
     ├── StatusDenied (PermissionError)       the socket is not ours to open
     └── SocketInUse (OSError)                another agent already serves this socket
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import stat
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "SOCKET_MODE",
    "SOCKET_NAME",
    "SocketInUse",
    "StatusDenied",
    "StatusError",
    "StatusServer",
    "StatusUnavailable",
    "ask",
    "default_socket",
    "fetch_status",
    "format_status",
]

log = logging.getLogger(__name__)

SOCKET_NAME = "evse-agent.sock"
SOCKET_MODE = 0o660
FETCH_TIMEOUT = 5.0
_MAX_DOCUMENT = 4 << 20
REQUEST_WAIT = 1.0
"""Seconds the server waits for a request line (or the client's end of writing)."""
_MAX_REQUEST = 4096

Snapshot = Callable[[], Mapping[str, Any]]
Answer = Callable[[Mapping[str, Any]], Any]
"""Answers one request (the parsed line); raises for a request it cannot answer."""


class StatusError(Exception):
    """The status could not be served or fetched; ``str()`` says what to do."""


class StatusUnavailable(StatusError, ConnectionError):
    pass


class StatusDenied(StatusError, PermissionError):
    pass


class SocketInUse(StatusError, OSError):
    pass


def default_socket(state_dir: str | Path) -> Path:
    """Where the agent serves its status: ``<state_dir>/evse-agent.sock``."""
    return Path(state_dir) / SOCKET_NAME


# --- the server --------------------------------------------------------------------------------


class StatusServer:
    """Serves ``snapshot()`` as one JSON document per connection on the Unix socket ``path``.

    ``async with StatusServer(path, snapshot):`` or ``await start()`` … ``await close()``.
    ``close()`` removes the socket file.
    """

    def __init__(self, path: str | Path, snapshot: Snapshot,
                 answers: Mapping[str, Answer] | None = None) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._answers = dict(answers or {})
        self._server: asyncio.Server | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        """Bind and listen. Raises SocketInUse, or OSError when the path is unusable."""
        _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # Before listen(): until then every connect is refused, so no one gets in
            # through the umask's mode.
            os.chmod(self.path, SOCKET_MODE)
            self._inode = os.stat(self.path).st_ino
            self._server = await asyncio.start_unix_server(self._answer, sock=sock)
        except BaseException:
            sock.close()
            raise
        log.info("status: serving on %s", self.path)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:  # not a successor's socket
                self.path.unlink()

    async def __aenter__(self) -> StatusServer:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            document = self._document(await self._request(reader))
        except Exception as error:  # a bug in snapshot() must not take the agent down
            log.exception("status: snapshot failed")
            document = {"error": f"snapshot failed: {type(error).__name__}: {error}"}
        data = json.dumps(document, default=str).encode("utf-8") + b"\n"
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError:
            pass  # the client left
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


    @staticmethod
    async def _request(reader: asyncio.StreamReader) -> bytes:
        """The client's request line; empty when it asked for nothing."""
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_WAIT)
        except (TimeoutError, ConnectionError, ValueError):  # ValueError: too long a line
            return b""
        return line.strip()[:_MAX_REQUEST]

    def _document(self, line: bytes) -> Mapping[str, Any]:
        if not line:
            return self._snapshot()
        try:
            request = json.loads(line)
            name = request["ask"]
            answer = self._answers[name]
        except (ValueError, TypeError, KeyError):
            return {"error": f"not a request this agent answers: {line[:100]!r}"}
        try:
            return {"ask": name, "answer": answer(request)}
        except Exception as error:  # a bad request or a broken store must not stop us
            log.warning("status: cannot answer %s: %s", name, error)
            return {"error": f"cannot answer {name}: {error}"}


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody serves; refuse to touch anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(errno.EEXIST, f"{path} exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # stale: left by an agent that did not close it (kill -9, power cut)
    except OSError as error:
        log.warning("status: cannot probe %s (%s); replacing it", path, error)
    else:
        raise SocketInUse(errno.EADDRINUSE, f"another evse-agent is serving {path}")
    finally:
        probe.close()
    path.unlink(missing_ok=True)
    log.info("status: removed the stale socket %s", path)


# --- the client --------------------------------------------------------------------------------


def fetch_status(path: str | Path, timeout: float = FETCH_TIMEOUT) -> dict[str, Any]:
    """The running agent's snapshot. Raises StatusUnavailable or StatusDenied, whose message
    tells the user what to do."""
    return _exchange(path, b"", timeout)


def ask(path: str | Path, request: Mapping[str, Any], timeout: float = FETCH_TIMEOUT) -> Any:
    """The running agent's answer to ``request`` (``{"ask": NAME, ...}``). Raises as
    :func:`fetch_status`, and StatusError when the agent cannot answer it (an error, or an
    agent too old to know the question)."""
    document = _exchange(path, json.dumps(request).encode("utf-8") + b"\n", timeout)
    if document.get("ask") != request.get("ask") or "answer" not in document:
        raise StatusError(f"the agent on {path} did not answer {request.get('ask')!r}: "
                          f"{document.get('error', 'it does not know the question')}")
    return document["answer"]


def _exchange(path: str | Path, request: bytes, timeout: float) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # asked: the server need not wait for more
        data = _read_all(sock)
    except (FileNotFoundError, ConnectionRefusedError) as error:
        raise StatusUnavailable(_not_running(path, error)) from None
    except PermissionError:
        raise StatusDenied(
            f"permission denied on {path}: run as root (sudo) or as a member of the "
            "service's group (sudo usermod -aG evse-agent $USER, then log in again)") from None
    except TimeoutError:
        raise StatusUnavailable(
            f"the agent did not answer on {path} within {timeout:g} s; it may be hung "
            "(journalctl -u evse-agent -n 50)") from None
    finally:
        sock.close()
    try:
        document = json.loads(data)
    except ValueError:
        raise StatusUnavailable(f"{path} did not answer with a status document") from None
    if not isinstance(document, dict):
        raise StatusUnavailable(f"{path} did not answer with a status document")
    return document


def _read_all(sock: socket.socket) -> bytes:
    chunks, size = [], 0
    while size <= _MAX_DOCUMENT:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _not_running(path: str | Path, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return (f"the agent is not running: {path} does not exist "
                "(systemctl status evse-agent; or give --socket/--config)")
    return f"the agent is not running: nothing answers on {path} (systemctl status evse-agent)"


# --- formatting --------------------------------------------------------------------------------

_COLUMNS = ("#", "status", "phase", "pilot", "contactor", "offer", "power", "session", "meter",
            "transaction")


def format_status(document: Mapping[str, Any]) -> str:
    """The snapshot as a few readable lines and a table of connectors."""
    lines = [_headline(document)]
    if document.get("error"):
        lines.append(f"error: {document['error']}")
    rows = [_connector_row(c) for c in _connectors(document.get("connectors"))]
    if rows:
        lines.extend(_table([_COLUMNS, *rows]))
    errors = document.get("last_errors") or []
    lines.append("last errors:" if errors else "last errors: none")
    lines.extend(f"  {_error_line(e)}" for e in errors)
    return "\n".join(lines)


def _headline(document: Mapping[str, Any]) -> str:
    charger = document.get("charger") or {}
    link = document.get("link") or {}
    name = " ".join(str(charger[k]) for k in ("id", "version") if charger.get(k))
    up = link.get("up")
    state = "up" if up else ("down" if up is not None else "unknown")
    registration = link.get("registration") or "none"
    endpoint = f" to {link['endpoint']}" if link.get("endpoint") else ""
    return f"evse-agent {name}".rstrip() + f": link {state}{endpoint}, registration {registration}"


def _connectors(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [{"id": key, **item} for key, item in value.items() if isinstance(item, Mapping)]
    return [item for item in value or () if isinstance(item, Mapping)]


def _connector_row(c: Mapping[str, Any]) -> tuple[str, ...]:
    tx = c.get("transaction") or {}
    status = str(c.get("status") or "-")
    if c.get("error") not in (None, "", "NoError"):
        status += f" ({c['error']})"
    contactor = c.get("contactor")
    if isinstance(contactor, bool):
        contactor = "closed" if contactor else "open"
    energy, start = _number(c.get("energy_wh")), _number(tx.get("meter_start"))
    session = energy - start if energy is not None and start is not None else None
    return (str(c.get("id", "?")), status, str(c.get("phase") or "-"), str(c.get("pilot") or "-"),
            str(contactor or "-"), _offer(c), _kilo(c.get("power_w"), "W"),
            _kilo(session, "Wh"), _kilo(c.get("energy_wh"), "Wh"), _transaction(tx))


def _offer(c: Mapping[str, Any]) -> str:
    """The pilot's offer, and what limits it unless it is the hardware: "10 A (local:hems)"."""
    amps = _number(c.get("offered_current"))
    if amps is None:
        return "-"
    source = c.get("limit_source")
    limited = f" ({source})" if source and source != "hardware" else ""
    return f"{amps:g} A{limited}"


def _transaction(tx: Mapping[str, Any]) -> str:
    if not tx:
        return "-"
    ident = tx.get("id")
    parts = [f"id {ident}" if ident is not None else "id pending"]
    if tx.get("tag"):
        parts.append(f"tag {tx['tag']}")
    if tx.get("started"):
        parts.append(f"since {_time(tx['started'])}")
    return ", ".join(parts)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _kilo(value: Any, unit: str) -> str:
    number = _number(value)
    if number is None:
        return "-"
    return f"{number / 1000:.2f} k{unit}" if abs(number) >= 1000 else f"{number:.0f} {unit}"


def _time(value: Any) -> str:
    """An ISO time in the local zone, to the second; other values as they are."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment.tzinfo else str(value)


def _error_line(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return str(entry)
    when = _time(entry["time"]) + "  " if entry.get("time") else ""
    level = f"{entry['level']} " if entry.get("level") else ""
    where = f"connector {entry['connector']}: " if entry.get("connector") is not None else ""
    return f"{when}{level}{where}{entry.get('text', '')}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]
