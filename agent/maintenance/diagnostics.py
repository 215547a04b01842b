"""GetDiagnostics (OCPP 1.6 Firmware Management): a bundle of what a technician needs, uploaded.

The bundle ``diagnostics-<charger>-<UTC time>.tar.gz`` holds:

* ``config.json``: the validated configuration, secrets masked (the CSMS password, any key
  named like a password or secret);
* ``ocpp-messages.jsonl``: the OCPP message log between ``startTime`` and ``stopTime``
  (already masked by :mod:`agent.frame_log`);
* ``journal.txt``: the service's journal for the same window (``journalctl``; a note when
  the charger has none or the service may not read it);
* ``store.json``: a summary of the state store (journal backlog, transactions, local list,
  cache, configuration keys set by the CSMS);
* ``versions.json``: the agent, the release, Python, the platform and the installed packages.

DiagnosticsStatusNotification reports Uploading, then Uploaded or UploadFailed after
``retries`` further attempts ``retryInterval`` seconds apart.

GetLog (OCPP 1.6 security extension) uploads the same bundle for ``DiagnosticsLog`` (the
window is ``oldestTimestamp`` .. ``latestTimestamp``), or for ``SecurityLog``
``security-log-<charger>-<UTC time>.tar.gz`` with the security log's records of the window
(``security-log.jsonl``, as ``evse-agent log --security --json`` shows them).
LogStatusNotification (with the GetLog's requestId) reports Uploading, then Uploaded, or
UploadFailure, PermissionDenied (the server refused the login: HTTP 401/403, FTP 530),
NotSupportedOperation (a URL scheme other than http, https, ftp and ftps) or BadMessage (a URL
that names no server). One upload runs at a time: a request while one runs is Rejected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import Config
from agent.core import messages as msg
from agent.frame_log import FrameLog, redact_payload
from agent.maintenance.transfer import (
    BadLocation,
    PermissionDenied,
    TlsContext,
    TransferError,
    UnsupportedScheme,
    upload,
    with_retries,
)
from agent.security_log import SecurityLog
from agent.store import Store

log = logging.getLogger(__name__)

JOURNAL_UNIT = "evse-agent"
JOURNAL_TIMEOUT = 30.0  # seconds
GET_LOG_TASK = "get-log"  # the name of a GetLog upload's task: a new GetLog cancels only that


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def masked_config(config: Config, secrets: Sequence[str]) -> dict[str, Any]:
    plain = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    masked: dict[str, Any] = redact_payload(plain, secrets)
    return masked


def store_summary(store: Store | None) -> dict[str, Any]:
    """Read on the event loop (the store's connection belongs to it)."""
    if store is None:
        return {"error": "no state store"}
    try:
        transactions = store.transactions()
        return {
            "schema_version": store.schema_version,
            "journal_pending": store.journal_size,
            "transactions_kept": len(transactions),
            "transactions_open": len(store.open_transactions()),
            "local_list_version": store.local_list_version(),
            "local_list_entries": len(store.local_list_entries()),
            "cache_entries": len(store.auth_cache_entries()),
            "settings_set_by_csms": sorted(store.settings()),
        }
    except Exception as error:  # a failing store is worth reporting, not a reason to fail
        return {"error": str(error)}


def versions(release: str | None) -> dict[str, Any]:
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                      if d.metadata["Name"])
    return {"agent": __version__, "release": release, "python": sys.version,
            "platform": platform.platform(), "packages": packages}


def journal_text(since: datetime | None, until: datetime | None) -> str:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return "no journalctl on this machine: the agent's log went to stderr\n"
    command = [journalctl, "--no-pager", "-o", "short-iso-precise", "-u", JOURNAL_UNIT]
    if since is not None:
        command += ["--since", since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
    if until is not None:
        command += ["--until", until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=JOURNAL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"journalctl failed: {error}\n"
    return done.stdout + (f"\n[journalctl: {done.stderr.strip()}]\n" if done.stderr else "")


def security_log_text(security_log: SecurityLog | None, since: datetime | None,
                      until: datetime | None) -> str:
    """The security log's records between ``since`` and ``until``, one JSON object a line."""
    if security_log is None:
        return ""
    lines = []
    for record in security_log.records():
        try:
            moment = datetime.fromisoformat(record.time)
        except ValueError:
            continue
        if (since is None or moment >= since) and (until is None or moment <= until):
            lines.append(json.dumps(dataclasses.asdict(record)) + "\n")
    return "".join(lines)


def log_status(error: TransferError) -> str:
    """The LogStatusNotification status for a failed GetLog upload."""
    if isinstance(error, PermissionDenied):
        return "PermissionDenied"
    if isinstance(error, UnsupportedScheme):
        return "NotSupportedOperation"
    if isinstance(error, BadLocation):
        return "BadMessage"
    return "UploadFailure"


def write_bundle(path: Path, members: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))


class Diagnostics:
    def __init__(self, config: Config, secrets: Sequence[str], store: Store | None,
                 frames: Callable[[], FrameLog | None], release: Callable[[], str | None],
                 report: Callable[[str], None], now: Callable[[], datetime],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 report_log: Callable[[str, int | None], None] = lambda s, r: None,
                 security_log: SecurityLog | None = None, tls: TlsContext | None = None
                 ) -> None:
        self.config = config
        self._tls = tls  # https: what the server's certificate is verified against
        self.status = "Idle"  # what TriggerMessage DiagnosticsStatusNotification reports
        self.log_status = "Idle"  # what ExtendedTriggerMessage LogStatusNotification reports
        self.log_request_id: int | None = None
        self._report_log = report_log
        self._security_log = security_log
        self._secrets = tuple(secrets)
        self._store = store
        self._frames = frames
        self._release = release
        self._report = report
        self._now = now
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self, request: msg.CsmsGetDiagnostics) -> str | None:
        """Start the upload; the file name for GetDiagnostics.conf (None when busy)."""
        if self.busy:
            log.warning("diagnostics: an upload is already running; ignoring %s",
                        request.location)
            return None
        name = f"diagnostics-{self.config.charger.id}-{_stamp(self._now())}.tar.gz"
        members = self._members_on_loop(request.start_time, request.stop_time)
        self._task = asyncio.create_task(self._upload(request, name, members),
                                         name="diagnostics")
        return name

    def get_log(self, request: msg.CsmsGetLog) -> msg.LogResult:
        """GetLog: start the upload of the diagnostics bundle or the security log."""
        status = "Accepted"
        if self.busy and self._task is not None and self._task.get_name() == GET_LOG_TASK:
            # The security whitepaper's AcceptedCanceled: a new GetLog replaces the running
            # one (whose upload ends without a final status), a GetDiagnostics is never cut.
            log.warning("GetLog %s: cancelling the upload of GetLog %s", request.request_id,
                        self.log_request_id)
            self._task.cancel()
            status = "AcceptedCanceled"
        elif self.busy:
            log.warning("diagnostics: an upload is already running; GetLog %s Rejected",
                        request.request_id)
            return msg.LogResult("Rejected")
        stamp = _stamp(self._now())
        if request.log_type == "SecurityLog":
            name = f"security-log-{self.config.charger.id}-{stamp}.tar.gz"
            members = {"security-log.jsonl": security_log_text(
                self._security_log, request.oldest, request.latest)}
        else:
            name = f"diagnostics-{self.config.charger.id}-{stamp}.tar.gz"
            members = self._members_on_loop(request.oldest, request.latest)
        self.log_request_id = request.request_id
        self._task = asyncio.create_task(self._upload_log(request, name, members),
                                         name=GET_LOG_TASK)
        return msg.LogResult(status, name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _members_on_loop(self, since: datetime | None,
                         until: datetime | None) -> dict[str, str]:
        frames = self._frames()
        if frames is not None:
            frames.flush()
            records = frames.query(since=since, until=until)
            messages = "".join(r.to_json() + "\n" for r in records)
        else:
            messages = ""
        return {
            "config.json": json.dumps(masked_config(self.config, self._secrets), indent=2),
            "ocpp-messages.jsonl": messages,
            "store.json": json.dumps(store_summary(self._store), indent=2),
            "versions.json": json.dumps(versions(self._release()), indent=2),
        }

    async def _upload(self, request: msg.CsmsGetDiagnostics, name: str,
                      members: dict[str, str]) -> None:
        self._say("Uploading")
        try:
            await self._send(request.location, request.retries, request.retry_interval, name,
                             members, request.start_time, request.stop_time)
        except TransferError as error:
            log.error("diagnostics: %s", error)
            self._say("UploadFailed")
        else:
            log.info("diagnostics: %s uploaded", name)
            self._say("Uploaded")
        self.status = "Idle"

    async def _upload_log(self, request: msg.CsmsGetLog, name: str,
                          members: dict[str, str]) -> None:
        self._say_log("Uploading")
        try:
            await self._send(request.location, request.retries, request.retry_interval, name,
                             members, request.oldest, request.latest)
        except TransferError as error:
            log.error("GetLog %d: %s", request.request_id, error)
            self._say_log(log_status(error))
        else:
            log.info("GetLog %d: %s uploaded", request.request_id, name)
            self._say_log("Uploaded")
        self.log_status = "Idle"

    async def _send(self, location: str, retries: int, interval: float, name: str,
                    members: dict[str, str], since: datetime | None,
                    until: datetime | None) -> None:
        """Write the bundle and upload it with retries; raises TransferError."""
        with tempfile.TemporaryDirectory(prefix="evse-diagnostics-") as work:
            path = Path(work) / name
            if "config.json" in members:  # the diagnostics bundle: the journal too
                members["journal.txt"] = await asyncio.to_thread(journal_text, since, until)
            await asyncio.to_thread(write_bundle, path, members)
            timeout = self.config.update.transfer_timeout
            await with_retries(lambda: upload(location, path, timeout, self._tls), retries,
                               interval, f"upload of {name}", self._sleep)

    def _say_log(self, status: str) -> None:
        self.log_status = status
        self._report_log(status, self.log_request_id)

    def _say(self, status: str) -> None:
        self.status = status
        self._report(status)
