"""Logging for journald: stderr, no timestamps, levels, connector context, no secrets.

:func:`configure` installs one handler on the root logger. Its lines look like::

    <6>agent.runtime: connector 1: charging 04A1B2C3 [connector=1 tx=42]     under systemd
    INFO agent.runtime: connector 1: charging 04A1B2C3 [connector=1 tx=42]   in a terminal

- No timestamps: journald stamps every line itself (``journalctl -o short-precise``).
- Under systemd the level becomes a syslog priority prefix ``<N>`` that journald turns into the
  entry's priority (``SyslogLevelPrefix=``, on by default), so ``journalctl -p warning`` works.
  Every line of a multi-line message (a traceback) carries the prefix, or journald would file
  the continuation lines at the default priority. The prefix is used when ``$JOURNAL_STREAM``
  names the stream's device and inode (systemd.exec(5): the variable is inherited by child
  processes whose stderr may go elsewhere).
- Context: a record with ``connector`` or ``transaction`` attributes ends in
  `` [connector=1 tx=42]``. They come from :class:`ConnectorLogger` (a LoggerAdapter) or, for
  everything logged inside ``with log_context(connector=1):``, from a context variable.
- Quiet at INFO in normal charging: every OCPP frame is kept by the frame log
  (:mod:`agent.frame_log`), so the ``agent.ocpp`` frame lines reach the console only with
  ``ocpp_frames=True``. The ``agent.ocpp`` *logger* stays at INFO either way: the frame log
  reads those records.
- Secrets: a filter on the handler masks each configured secret (the CSMS password) and any
  HTTP Basic credentials anywhere in the message, its traceback and its stack.

:class:`RecentProblems` keeps the last warnings and errors for ``evse-agent status``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "FRAMES_LOGGER",
    "REDACTED",
    "ConnectorLogger",
    "JournalFormatter",
    "RecentProblems",
    "SecretFilter",
    "configure",
    "journal_attached",
    "log_context",
    "redact_text",
]

FRAMES_LOGGER = "agent.ocpp"
REDACTED = "***"
_QUIET_LIBRARIES = ("pymodbus", "websockets", "transitions", "asyncio")

# HTTP Basic credentials: in a header ("Authorization: Basic …", "'Authorization': 'Basic …'"),
# or bare: "Basic" and a base64 token of 12+ characters, not a plain lowercase word.
_BASIC = re.compile(
    r"""(?i:(authorization['"]?\s*[:=,]\s*['"]?basic\s+))[A-Za-z0-9+/=_-]+"""
    r"|(\bBasic\s+)(?![a-z]+\b)[A-Za-z0-9+/_-]{12,}={0,2}")

# A secret configuration value in a raw OCPP frame (the ocpp library logs every frame):
# ChangeConfiguration {"key": "AuthorizationKey", "value": "…"} and the 2.0.1 variable form.
_SECRET_VALUE = re.compile(
    r"""((?i:"(?:key|name)"\s*:\s*"(?:AuthorizationKey|BasicAuthPassword)"[^{}]*?"""
    r""""(?:value|attributeValue)"\s*:\s*"))(?:[^"\\]|\\.)*""")
# A password in a URL's user info (an UpdateFirmware or GetDiagnostics location on ftp://).
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@\"']*:)[^/\s@\"']+@")

_context: contextvars.ContextVar[tuple[tuple[str, object], ...]] = contextvars.ContextVar(
    "evse_log_context", default=())


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret, every HTTP Basic credential and every password in a URL
    replaced by ``***``."""
    text = _BASIC.sub(lambda m: (m[1] or m[2]) + REDACTED, text)
    text = _SECRET_VALUE.sub(lambda m: m[1] + REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m[1] + REDACTED + "@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


# --- context ----------------------------------------------------------------------------------


class ConnectorLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds ``[connector=N tx=T]`` to each line.

    ``ConnectorLogger(log, connector=1).with_transaction(42).info("meter %s Wh", wh)``.
    Per-call ``extra=`` entries are kept (the stdlib adapter would drop them).
    """

    def __init__(self, logger: logging.Logger, connector: int | None = None,
                 transaction: int | str | None = None) -> None:
        super().__init__(logger, {"connector": connector, "transaction": transaction})

    def with_transaction(self, transaction: int | str | None) -> ConnectorLogger:
        extra = self.extra or {}
        return ConnectorLogger(self.logger, extra.get("connector"),  # type: ignore[arg-type]
                               transaction)

    def process(self, msg: Any,
                kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


@contextlib.contextmanager
def log_context(connector: int | None = None,
                transaction: int | str | None = None) -> Iterator[None]:
    """Within the block (and tasks created in it), log lines carry this connector/transaction."""
    token = _context.set((("connector", connector), ("transaction", transaction)))
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    """Fills ``connector``/``transaction`` from :func:`log_context` where the record has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get():
            if getattr(record, name, None) is None and value is not None:
                setattr(record, name, value)
        return True


def _context_suffix(record: logging.LogRecord) -> str:
    parts = []
    connector = getattr(record, "connector", None)
    transaction = getattr(record, "transaction", None)
    if connector is not None:
        parts.append(f"connector={connector}")
    if transaction is not None:
        parts.append(f"tx={transaction}")
    return f" [{' '.join(parts)}]" if parts else ""


# --- format ------------------------------------------------------------------------------------


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    for floor, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3),
                            (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= floor:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>name: message [context]`` for journald, ``LEVEL name: message [context]`` else."""

    def __init__(self, journal: bool) -> None:
        super().__init__("%(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        first, newline, rest = text.partition("\n")
        text = first + _context_suffix(record) + newline + rest
        if not self.journal:
            return f"{record.levelname} {text}"
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def journal_attached(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd named in ``$JOURNAL_STREAM``."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (int(device), int(inode)) == (stat.st_dev, stat.st_ino)
    except (OSError, ValueError, AttributeError):  # no such variable, or not a real file
        return False


# --- filters -----------------------------------------------------------------------------------


class SecretFilter(logging.Filter):
    """Masks the secrets and HTTP Basic credentials in a record's message, traceback and stack.

    It rewrites the record in place (``msg`` formatted, ``args`` cleared), so every handler
    after this one sees the masked text too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_text(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True


class _FramesToConsole(logging.Filter):
    """Drops ``agent.ocpp`` records below WARNING (the frames) unless they were asked for."""

    def __init__(self, show_frames: bool) -> None:
        super().__init__()
        self.show_frames = show_frames

    def filter(self, record: logging.LogRecord) -> bool:
        if self.show_frames or record.levelno >= logging.WARNING:
            return True
        return not (record.name == FRAMES_LOGGER or record.name.startswith(FRAMES_LOGGER + "."))


class RecentProblems(logging.Handler):
    """The last ``size`` warnings and errors, newest last, secrets masked: add it to the root
    logger and show :meth:`entries` as ``last_errors`` in the status."""

    def __init__(self, size: int = 10, secrets: Iterable[str] = ()) -> None:
        super().__init__(logging.WARNING)
        self._secrets = tuple(s for s in secrets if s)
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact_text(f"{record.name}: {record.getMessage()}", self._secrets)
        except Exception:
            self.handleError(record)
            return
        moment = datetime.fromtimestamp(record.created, UTC)
        self._entries.append({
            "time": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "connector": getattr(record, "connector", None),
            "text": text,
        })

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)


# --- setup -------------------------------------------------------------------------------------


def configure(level: str | int, ocpp_frames: bool, stream: TextIO | None = None,
              secrets: Iterable[str] = (), journal: bool | None = None) -> logging.Handler:
    """Send the agent's log to ``stream`` (default: stderr) in the journald format above.

    ``level`` is a name ("INFO") or number; ``secrets`` are masked everywhere (pass the CSMS
    password); ``journal`` forces or suppresses the ``<N>`` prefix (default: detect). Calling
    it again replaces the handler it installed before. Returns the handler.
    """
    stream = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream)
    handler.setLevel(numeric)  # propagated records skip the root logger's level check
    handler.setFormatter(JournalFormatter(journal_attached(stream) if journal is None
                                          else journal))
    for f in (SecretFilter(secrets), _ContextFilter(), _FramesToConsole(ocpp_frames)):
        handler.addFilter(f)
    handler._evse_agent = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_evse_agent", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # The frame log needs the frame records whatever the console shows.
    logging.getLogger(FRAMES_LOGGER).setLevel(min(numeric, logging.INFO))
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    return handler
