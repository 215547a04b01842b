"""UpdateFirmware (OCPP 1.6 Firmware Management), unsigned: our "firmware" is an agent release.

The path of one update, with the FirmwareStatusNotification each step reports:

1. wait for ``retrieveDate``; **Downloading**; download the package with ``retries`` and
   ``retryInterval``; **DownloadFailed** when no attempt gets the whole file;
2. **Downloaded**; **Installing**: the package is verified (manifest and sha256 checksums;
   OCPP 1.6 has no status of its own for a bad file, TC_044_3 expects InstallationFailed) and
   installed as a new virtual environment beside the running one (:meth:`Releases.install`);
   **InstallationFailed** when either fails;
3. wait until no transaction runs, write the trial file, switch ``current``, exit for a
   restart (the service manager starts the new release, through the guard);
4. the new release, on trial, must register with the CSMS and read every meter within
   ``[update] health_timeout``: then it commits (removes the trial file) and reports
   **Installed**. Otherwise it exits again and the guard brings the previous release back,
   which reports **InstallationFailed**. A trial release that crashes or is killed is rolled
   back the same way.

SignedUpdateFirmware (security extension) takes the same path with one more status and one
more step: a ``retrieveDate`` in the future is **DownloadScheduled** until then; after
**Downloaded** the package's signature is checked (``check``); **InvalidSignature** ends the
update there, else **SignatureVerified** and on to Installing. Its requestId is kept in the
releases' ``signed`` file so that every status, also after the restart or a roll-back, is
told as a SignedFirmwareStatusNotification with it.

A final status is kept in the ``report`` file until the CSMS has confirmed it, so it is told
after any restart. A kill -9 in steps 1-2 leaves a job file behind: the next start cleans up
the partial download or install and reports DownloadFailed or InstallationFailed; the charger
runs the release it ran before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from agent.config import UpdateConfig
from agent.core import messages as msg
from agent.maintenance.package import PackageError, verify
from agent.maintenance.releases import InstallError, Releases
from agent.maintenance.transfer import TlsContext, TransferError, download, with_retries

log = logging.getLogger(__name__)

IDLE_POLL = 1.0  # seconds between looks for the end of the running transactions
FINAL = ("Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature")


class SignatureError(Exception):
    """The downloaded package does not carry the signature the CSMS sent; the text says
    why."""


SignatureCheck = Callable[[Path], None]  # raises SignatureError


class FirmwareUpdater:
    """``report(status)`` tells the CSMS (final statuses are also kept in the report file);
    ``transaction_running()`` asks the core; ``restart()`` ends the process for the service
    manager to start ``current``; ``hardware_ok()`` reads every meter once; ``hold(on)``
    sets or clears the core's maintenance hold while the update waits for transactions."""

    def __init__(self, releases: Releases, config: UpdateConfig,
                 report: Callable[[str], None], transaction_running: Callable[[], bool],
                 restart: Callable[[], None], hardware_ok: Callable[[], Awaitable[None]],
                 now: Callable[[], datetime],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 tls: TlsContext | None = None,
                 hold: Callable[[bool], None] = lambda on: None) -> None:
        self.releases = releases
        self._hold = hold  # the core's maintenance hold (ev.MaintenanceHold), set or cleared
        self._tls = tls  # https: what the server's certificate is verified against
        self.config = config
        self.status = "Idle"  # what TriggerMessage FirmwareStatusNotification reports
        self._report = report
        self._transaction_running = transaction_running
        self._restart = restart
        self._hardware_ok = hardware_ok
        self._now = now
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self.request_id = releases.request_id()  # the signed update's, None for unsigned

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- start-up: what the last run left --------------------------------------------------

    def resume(self) -> None:
        """Settle an interrupted update, or start the health check of a release on trial."""
        releases = self.releases
        trial = releases.trial()
        job = releases.job()
        current = releases.current()
        if trial is not None and trial.release == current:
            releases.clear_job()
            log.warning("update: release %s is on trial (previous: %s); health check within "
                        "%.0f s", current, trial.previous, self.config.health_timeout)
            self.status = "Installing"
            self._task = asyncio.create_task(self._health_check(), name="update-health")
            return
        if trial is not None:  # killed between writing the trial and switching
            releases.end_trial()
            job = job or {"phase": "installing"}
        releases.clean_partial()
        if job is not None:
            phase = job.get("phase", "")
            log.error("update: the last run stopped while %s; running %s", phase, current)
            self._final("DownloadFailed" if phase == "downloading" else "InstallationFailed")

    def registered(self) -> None:
        """The CSMS accepted our BootNotification."""
        self._registered.set()

    async def _health_check(self) -> None:
        try:
            await asyncio.wait_for(self._healthy(), self.config.health_timeout)
        except TimeoutError:
            log.error("update: release %s failed its health check (registered: %s); "
                      "restarting to roll back", self.releases.current(),
                      self._registered.is_set())
            await self._until_idle()
            self._restart()  # the hold, if set, ends with this process
            return
        self.releases.end_trial()
        log.warning("update: release %s is healthy: committed", self.releases.current())
        self.releases.prune(self.config.keep)
        self._final("Installed")

    async def _healthy(self) -> None:
        await self._registered.wait()
        await self._hardware_ok()

    # --- UpdateFirmware ---------------------------------------------------------------

    def request(self, request: msg.CsmsUpdateFirmware, request_id: int | None = None,
                check: SignatureCheck | None = None) -> bool:
        """Start the update (a signed one with its ``request_id`` and signature ``check``);
        False when one is running already."""
        if self.busy:
            log.warning("update: already busy (%s); ignoring the update to %s",
                        self.status, request.location)
            return False
        self.releases.root.mkdir(parents=True, exist_ok=True)
        self.releases.set_request_id(request_id)
        self.request_id = request_id
        self._task = asyncio.create_task(self._update(request, check), name="update")
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _update(self, request: msg.CsmsUpdateFirmware,
                      check: SignatureCheck | None) -> None:
        delay = (request.retrieve_date - self._now()).total_seconds()
        if delay > 0:
            log.info("update: downloading %s in %.0f s", request.location, delay)
            if check is not None:  # only the signed statuses have one for this (L01.FR.13)
                self._say("DownloadScheduled")
            await self._sleep(delay)
        releases = self.releases
        releases.root.mkdir(parents=True, exist_ok=True)
        releases.set_job("downloading")
        self._say("Downloading")
        archive = releases.download_path("incoming")
        try:
            await with_retries(
                lambda: download(request.location, archive, self.config.transfer_timeout,
                                 self._tls),
                request.retries, request.retry_interval, "update download", self._sleep)
        except TransferError as error:
            log.error("update: %s", error)
            self._final("DownloadFailed")
            return
        self._say("Downloaded")
        if check is not None:
            try:  # before anything of the package is unpacked or run
                await asyncio.to_thread(check, archive)
            except SignatureError as error:
                log.error("update: %s: %s", request.location, error)
                archive.unlink(missing_ok=True)
                self._final("InvalidSignature")
                return
            self._say("SignatureVerified")
        releases.set_job("installing")
        self._say("Installing")
        try:
            try:  # TC_044_3: a file that is not a valid release fails its installation
                manifest = await asyncio.to_thread(verify, archive)
            except PackageError as error:
                raise InstallError(f"{request.location}: {error}") from error
            name = releases.new_name(manifest.version, self._now())
            releases.set_job("installing", name)
            await releases.install(archive, name, self.config.installer)
            await self._switch(name)
        except InstallError as error:
            log.error("update: %s", error)
            self._final("InstallationFailed")
        finally:
            archive.unlink(missing_ok=True)

    async def _switch(self, name: str) -> None:
        previous = self.releases.current()
        if previous is None:
            raise InstallError(f"{self.releases.root}/current is missing: this agent does not "
                               "run from a release (see docs/updates.md)")
        held = await self._until_idle()
        try:
            self.releases.set_job("switching", name)
            self.releases.begin_trial(previous, name)
            self.releases.switch(name)
            self.releases.clear_job()
        except BaseException:
            if held:
                self._hold(False)
            raise
        log.warning("update: switched to %s (previous: %s); restarting", name, previous)
        self._restart()  # the hold ends with this process: it is never saved

    async def _until_idle(self) -> bool:
        """Wait until no transaction runs. Meanwhile the connectors not in use are held
        Unavailable, so that no new session delays the update (OCPP 1.6 security white paper
        L01.FR.07/L01.FR.19); True when the hold was set (it stays until the restart). An
        abandoned wait (the update cancelled) clears it again."""
        if not self._transaction_running():
            return False
        log.info("update: waiting for the running transactions to end; the idle connectors "
                 "are Unavailable meanwhile")
        self._hold(True)
        try:
            while self._transaction_running():
                await self._sleep(IDLE_POLL)
        except BaseException:
            self._hold(False)
            raise
        return True

    # --- reporting -------------------------------------------------------------------

    def _say(self, status: str) -> None:
        self.status = status
        self._report(status)

    def _final(self, status: str) -> None:
        self.releases.clear_job()
        if self.releases.root.is_dir():
            self.releases.set_report(status)
        self.status = "Idle"
        self._report(status)

