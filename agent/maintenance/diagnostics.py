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
from agent.maintenance.transfer import TransferError, upload, with_retries
from agent.store import Store

log = logging.getLogger(__name__)

JOURNAL_UNIT = "evse-agent"
JOURNAL_TIMEOUT = 30.0  # seconds


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
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.status = "Idle"  # what TriggerMessage DiagnosticsStatusNotification reports
        self._secrets = tuple(secrets)
        self._store = store
        self._frames = frames
        self._release = release
        self._report = report
        self._now = now
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def request(self, request: msg.CsmsGetDiagnostics) -> str | None:
        """Start the upload; the file name for GetDiagnostics.conf (None when busy)."""
        if self._task is not None and not self._task.done():
            log.warning("diagnostics: an upload is already running; ignoring %s",
                        request.location)
            return None
        name = f"diagnostics-{self.config.charger.id}-{_stamp(self._now())}.tar.gz"
        members = self._members_on_loop(request)
        self._task = asyncio.create_task(self._upload(request, name, members),
                                         name="diagnostics")
        return name

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _members_on_loop(self, request: msg.CsmsGetDiagnostics) -> dict[str, str]:
        frames = self._frames()
        if frames is not None:
            frames.flush()
            records = frames.query(since=request.start_time, until=request.stop_time)
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
        with tempfile.TemporaryDirectory(prefix="evse-diagnostics-") as work:
            path = Path(work) / name
            members["journal.txt"] = await asyncio.to_thread(
                journal_text, request.start_time, request.stop_time)
            await asyncio.to_thread(write_bundle, path, members)
            timeout = self.config.update.transfer_timeout
            try:
                await with_retries(lambda: upload(request.location, path, timeout),
                                   request.retries, request.retry_interval,
                                   "diagnostics upload", self._sleep)
            except TransferError as error:
                log.error("diagnostics: %s", error)
                self._say("UploadFailed")
                self.status = "Idle"
                return
        log.info("diagnostics: %s uploaded", name)
        self._say("Uploaded")
        self.status = "Idle"

    def _say(self, status: str) -> None:
        self.status = status
        self._report(status)
