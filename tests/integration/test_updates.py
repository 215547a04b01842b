"""UpdateFirmware end to end: a release package served over HTTP and FTP by real servers on
loopback, the agent running as the service does (guard, ``releases/current``, restart on
exit), the strict 1.6 CSMS in the test. Each case asserts the FirmwareStatusNotification
sequence and which release runs afterwards (its BootNotification firmwareVersion and the
``current`` link). OCTT TC_044_1 (download and install), TC_044_2 (download failed),
TC_044_3 (installation failed) by id; and a release that fails its health check, one that
crashes on start, an update that waits for the transaction to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import call

from agent.maintenance.releases import Releases
from evsim.csms import Frame
from evsim.site import SimSite, SiteOptions, free_port
from tests.pki import TestCa, server_context

from .conformance.helpers import VALID, VALID_2, charging, present_again, status, until
from .conftest import Bench
from .file_servers import FtpFiles, HttpFiles, file_servers, ftp_files, http_files
from .releases_kit import (
    ReleaseService,
    corrupt,
    install_first,
    make_package,
    quick_installer,
    update_toml,
)

pytestmark = pytest.mark.timeout(180)

OLD, NEW = "0.1.0+old", "0.2.0+new"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "raspberry-pi.toml"
WITHIN = 60.0  # against hangs only


@dataclass
class Kit:
    site: SimSite
    http: HttpFiles
    ftp: FtpFiles
    files: Path
    releases: Releases
    service: ReleaseService
    first: str

    def boot_versions(self) -> list[str | None]:
        return [f.payload.get("firmwareVersion") for f in self.site.csms.calls("BootNotification")]

    async def update(self, location: str, retries: int = 0, retry_interval: int = 0) -> None:
        await self.site.csms.call(call.UpdateFirmware(
            location=location, retrieve_date=datetime.now(UTC).isoformat(),
            retries=retries, retry_interval=retry_interval))

    async def statuses(self, count: int) -> list[str]:
        csms = self.site.csms
        try:
            await csms.wait_for(lambda: len(csms.firmware_statuses) >= count, WITHIN)
        except TimeoutError:
            raise AssertionError(
                f"statuses {csms.firmware_statuses}\n{self.service.tail()}") from None
        await asyncio.sleep(0.5)  # nothing more comes
        return list(csms.firmware_statuses)

    async def running(self, version: str) -> None:
        """The service runs ``version``: booted with it, registered, and Available."""
        csms = self.site.csms
        try:
            await csms.wait_for(lambda: self.boot_versions()[-1:] == [version], WITHIN)
            await status(self.site, "Available", 1, WITHIN)
        except TimeoutError:
            raise AssertionError(f"boots {self.boot_versions()}\n{self.service.tail()}") from None
        current = self.releases.current()
        assert current is not None and current.startswith(version + "-")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HttpFiles, FtpFiles, Path]]:
    with file_servers(tmp_path / "files") as servers:
        yield servers


async def _kit(site: SimSite, served: tuple[HttpFiles, FtpFiles, Path],
               health_timeout: float = 20.0) -> Kit:
    http, ftp, files = served
    work = site.workdir
    installer = quick_installer(work)
    releases = Releases(work / "releases")
    first = await install_first(releases, make_package(work / "build", OLD), installer)
    make_package(files, NEW)
    site.options.extra_toml = update_toml(releases.root, installer, health_timeout)
    return Kit(site, http, ftp, files, releases, ReleaseService(site, releases.root), first)


@pytest.fixture
async def kit(site: SimSite, served: tuple[HttpFiles, FtpFiles, Path]) -> AsyncIterator[Kit]:
    running = await _kit(site, served)
    await running.service.start()
    try:
        await running.running(OLD)
        yield running
    finally:
        await running.service.stop()
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_tc_044_1_update_downloads_installs_restarts_and_reports_installed(
    kit: Kit, scheme: str
) -> None:
    url = (kit.http.url if scheme == "http" else kit.ftp.url)(f"evse-agent-{NEW}.tar.gz")
    await kit.update(url)
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing", "Installed"]
    await kit.running(NEW)
    assert kit.releases.trial() is None, "the new release committed"
    assert kit.releases.report() is None, "Installed was confirmed by the CSMS"
    assert sorted(kit.releases.names()) == sorted([kit.first, kit.releases.current()])
    assert kit.service.exits == [75], "one restart, asked for by the old release"


async def test_tc_044_2_unreachable_location_reports_download_failed(kit: Kit) -> None:
    await kit.update(f"http://127.0.0.1:{free_port()}/evse-agent.tar.gz", retries=1)
    assert await kit.statuses(2) == ["Downloading", "DownloadFailed"]
    await kit.running(OLD)
    assert kit.service.starts == 1, "no restart"


async def test_a_missing_file_is_retried_then_reported_download_failed(kit: Kit) -> None:
    await kit.update(kit.http.url("no-such-release.tar.gz"), retries=2, retry_interval=0)
    assert await kit.statuses(2) == ["Downloading", "DownloadFailed"]
    gets = [path for method, path in kit.http.methods if method == "GET"]
    assert gets == ["/no-such-release.tar.gz"] * 3, "the first attempt and two retries"
    await kit.running(OLD)


async def test_tc_044_3_corrupt_package_reports_installation_failed(kit: Kit) -> None:
    bad = corrupt(kit.files / f"evse-agent-{NEW}.tar.gz", kit.files)
    await kit.update(kit.http.url(bad.name))
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing",
                                     "InstallationFailed"]
    await kit.running(OLD)
    assert kit.releases.names() == [kit.first], "nothing of the bad release is left"
    assert kit.service.starts == 1


async def test_tc_044_3_a_file_that_is_no_release_reports_installation_failed(kit: Kit) -> None:
    (kit.files / "notes.tar.gz").write_bytes(b"this is not a tarball")
    await kit.update(kit.ftp.url("notes.tar.gz"))
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing",
                                     "InstallationFailed"]
    await kit.running(OLD)


async def test_a_release_that_fails_its_health_check_is_rolled_back(
    site: SimSite, served: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    kit = await _kit(site, served, health_timeout=4.0)
    site.csms.rejected_firmware.add(NEW)  # the new release never gets registered
    await kit.service.start()
    try:
        await kit.running(OLD)
        await kit.update(kit.http.url(f"evse-agent-{NEW}.tar.gz"))
        assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing",
                                         "InstallationFailed"]
        await kit.running(OLD)
        assert NEW in kit.boot_versions(), "the new release did start"
        assert kit.releases.trial() is None and kit.releases.report() is None
        assert kit.service.exits == [75, 75], "switch, then the failed health check"
    finally:
        await kit.service.stop()


async def test_a_release_that_crashes_on_start_is_rolled_back(kit: Kit) -> None:
    make_package(kit.files, "0.3.0+broken", broken=True)
    await kit.update(kit.http.url("evse-agent-0.3.0+broken.tar.gz"))
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing",
                                     "InstallationFailed"]
    await kit.running(OLD)
    assert kit.service.exits[0] == 75 and kit.service.exits[1] not in (0, 75), \
        "the broken release died on its own"
    assert "broken on purpose" in kit.service.tail(100)


async def test_the_restart_waits_for_the_transaction_to_end(kit: Kit, bench: Bench) -> None:
    """While the update waits, the connector charging goes on (it stays Charging, the
    charger does not turn Unavailable); once its transaction ends it is Unavailable until the
    restart, so no new session delays the update (white paper L01.FR.07/L01.FR.19)."""
    csms = kit.site.csms
    await charging(kit.site, bench, VALID)
    seen = len(csms.statuses)
    await kit.update(kit.http.url(f"evse-agent-{NEW}.tar.gz"))
    assert await kit.statuses(3) == ["Downloading", "Downloaded", "Installing"]
    await asyncio.sleep(1.5)
    assert kit.service.starts == 1 and await bench.relay_closed(), "still charging"
    assert csms.statuses[seen:] == [], "the charging connector and the charger keep theirs"
    result = await csms.call(
        call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert result.status == "Accepted"
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing", "Installing"]
    boots = len(csms.calls("BootNotification"))
    await bench("unplug", 1)
    assert (await kit.statuses(5))[-1] == "Installed"
    await kit.running(NEW)
    (tx,) = csms.transactions.values()
    assert tx.meter_stop is not None and tx.reason == "EVDisconnected"
    # Between the stop and the restart: Unavailable (connector 1, then the whole charger);
    # after the restart: Available again (the hold is not kept).
    after = [(cid, st) for cid, st, _ in csms.statuses[seen:]]
    held = after[:after.index((0, "Available"))]  # until the new release registers
    assert [st for cid, st in held if cid == 1] == ["Finishing", "Unavailable"], after
    assert [st for cid, st in held if cid == 0] == ["Unavailable"], after
    assert after[-1] == (1, "Available") and len(csms.calls("BootNotification")) > boots



@pytest.mark.parametrize("site_options", [SiteOptions(connectors=2, sample_interval=1)])
async def test_while_the_update_waits_the_idle_connector_is_unavailable(
        kit: Kit, bench: Bench) -> None:
    """Two connectors, one charging: the other turns Unavailable as soon as the update waits
    and refuses a new session; after the restart it takes one again (L01.FR.07/L01.FR.19)."""
    csms = kit.site.csms
    await charging(kit.site, bench, VALID)
    await kit.update(kit.http.url(f"evse-agent-{NEW}.tar.gz"))
    assert await kit.statuses(3) == ["Downloading", "Downloaded", "Installing"]
    await status(kit.site, "Unavailable", 2, WITHIN)
    assert csms.last_status(1) == "Charging" and await bench.relay_closed(1)
    assert csms.last_status(0) == "Available", "connector 1 still charges"
    starts = len(csms.calls("StartTransaction"))
    await bench("plug", 2)
    await bench("ev_state", 2, "C")
    await present_again(bench, VALID_2)
    await asyncio.sleep(1.5)
    assert len(csms.calls("StartTransaction")) == starts, "no new session while held"
    assert csms.last_status(2) == "Unavailable" and not await bench.relay_closed(2)
    await bench("unplug", 1)
    assert (await kit.statuses(4))[-1] == "Installed"
    await kit.running(NEW)
    await status(kit.site, "Preparing", 2, WITHIN)  # the hold ended with the old process
    (tx,) = csms.transactions.values()
    assert tx.meter_stop is not None and tx.connector_id == 1


# --- kill -9 at every step ---------------------------------------------------------------

DOWNLOADING = "downloading"
INSTALLING = "installing"
ON_TRIAL = "on trial"
COMMITTED = "committed"


def _killer(kit: Kit, step: str) -> None:
    """Arm a SIGKILL of the agent at ``step``, from the CSMS's frame callback (synchronous:
    the agent dies before the CSMS answers)."""
    killed: list[str] = []

    def on_frame(frame: Frame) -> None:
        if killed or frame.direction != "in" or frame.message_type != 2:
            return
        status = frame.payload.get("status")
        if ((step == INSTALLING and status == "Installing")
                or (step == ON_TRIAL and frame.action == "BootNotification"
                and frame.payload.get("firmwareVersion") == NEW)
                or (step == COMMITTED and status == "Installed")):
            killed.append(step)
            kit.service.kill_now()

    kit.site.csms.on_frame = on_frame


@pytest.mark.parametrize(("step", "survivor", "final"), [
    (DOWNLOADING, OLD, "DownloadFailed"),
    (INSTALLING, OLD, "InstallationFailed"),
    (ON_TRIAL, OLD, "InstallationFailed"),
    (COMMITTED, NEW, "Installed"),
])
async def test_kill_9_at_each_step_leaves_one_complete_release_running(
    site: SimSite, served: tuple[HttpFiles, FtpFiles, Path], step: str, survivor: str,
    final: str
) -> None:
    kit = await _kit(site, served)
    if step == INSTALLING:  # the kill lands while the new venv is still being made
        site.options.extra_toml = site.options.extra_toml.replace(
            "installer = '", "installer = 'sleep 3; ")
        kit.service = ReleaseService(site, kit.releases.root)
    package = f"evse-agent-{NEW}.tar.gz"
    if step == DOWNLOADING:
        kit.http.stall.add(package)
    _killer(kit, step)
    await kit.service.start()
    try:
        await kit.running(OLD)
        await kit.update(kit.http.url(package))
        if step == DOWNLOADING:
            await site.csms.wait_for(lambda: ("GET", f"/{package}") in kit.http.methods)
            await asyncio.sleep(0.3)  # half the file is on the disk
            kit.service.kill_now()
        csms = site.csms
        await until(lambda: -9 in kit.service.exits, WITHIN, "the kill")
        boots = len(csms.calls("BootNotification"))
        await csms.wait_for(lambda: len(csms.calls("BootNotification")) > boots, WITHIN)
        # The killed release's Installed was never confirmed: it is told again.
        finals = 2 if step == COMMITTED else 1
        await csms.wait_for(lambda: csms.firmware_statuses.count(final) == finals, WITHIN)
        await kit.running(survivor)
        current = kit.releases.path(kit.releases.current() or "")
        assert (current / "bin" / "python").exists()
        leftovers = [p.name for p in kit.releases.root.iterdir()
                     if p.name.startswith(".") or p.name == "downloads"]
        assert leftovers == [], "the interrupted work was cleaned up"
        assert kit.releases.trial() is None
        await asyncio.sleep(0.5)
        assert csms.firmware_statuses[-1] == final and kit.releases.report() is None
    finally:
        await kit.service.stop()
    assert site.csms.violations == []


@pytest.mark.slow
async def test_the_default_installer_makes_a_real_venv_with_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one test of ``[update] installer`` unset: ``python -m venv`` with pip, then pip
    installs the package's wheel. Offline and without the dependencies (PIP_NO_INDEX,
    PIP_NO_DEPS), so ``check-config``, which needs only the standard library, shows it runs."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_DEPS", "1")
    releases = Releases(tmp_path / "releases")
    releases.root.mkdir()
    package = make_package(tmp_path, NEW)
    release = await releases.install(package, "real", None)
    releases.switch("real")
    assert releases.names() == ["real"]
    # The starter config made real, as an installer leaves it (its placeholders are refused).
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE.read_text()
                      .replace("wss://csms.example.com/ocpp", "wss://csms.depot.test/ocpp")
                      .replace("REPLACE-with-the-key-from-your-CSMS", "k3y-from-the-csms-0042"))
    process = await asyncio.create_subprocess_exec(
        str(release / "bin" / "evse-agent"), "check-config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    version = await asyncio.create_subprocess_exec(
        str(release / "bin" / "python"), "-c", "import agent; print(agent.__version__)",
        stdout=asyncio.subprocess.PIPE, cwd=tmp_path)  # not this checkout's agent/
    assert (await version.communicate())[0].decode().strip() == NEW


@pytest.mark.parametrize(("scheme", "root_type"), [
    ("https", "CentralSystemRootCertificate"), ("https", "ManufacturerRootCertificate"),
    ("ftps", "CentralSystemRootCertificate")])
async def test_an_https_or_ftps_update_trusts_an_installed_root(
    kit: Kit, tmp_path: Path, scheme: str, root_type: str
) -> None:
    """https and ftps are verified against the system's trust store plus the installed CSMS
    and manufacturer roots (docs/updates.md): a file server with a certificate from a root
    the CSMS installed serves the release (the FTPS server requires TLS on the control and
    the data connections)."""
    ca = TestCa("Operator Files Root")
    installed = await kit.site.csms.call(call.InstallCertificate(
        certificate_type=root_type, certificate=ca.root_pem))
    assert installed.status == "Accepted"
    name = f"evse-agent-{NEW}.tar.gz"
    served = (http_files(kit.files, server_context(ca, tmp_path / "tls")) if scheme == "https"
              else ftp_files(kit.files, ca.server_files(tmp_path / "tls")))
    with served as server:
        await kit.update(server.url(name))
        assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing",
                                         "Installed"]
        await kit.running(NEW)
    if isinstance(server, HttpFiles):
        assert server.methods == [("GET", f"/{name}")]


@pytest.mark.parametrize("server", ["unknown_ca", "wrong_host"])
async def test_an_https_server_the_charger_cannot_trust_is_download_failed(
    kit: Kit, tmp_path: Path, server: str
) -> None:
    ca = TestCa("Operator Files Root")
    installed = await kit.site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate", certificate=ca.root_pem))
    assert installed.status == "Accepted"
    tls = (server_context(TestCa("Somebody Else's Root"), tmp_path / "tls")
           if server == "unknown_ca" else
           server_context(ca, tmp_path / "tls", hosts=("files.example.org",)))
    with http_files(kit.files, tls) as https:
        await kit.update(https.url(f"evse-agent-{NEW}.tar.gz"), retries=1)
        assert await kit.statuses(2) == ["Downloading", "DownloadFailed"]
    assert https.methods == [], "no request got past the handshake"
    assert "CERTIFICATE_VERIFY_FAILED" in kit.service.tail(200)
    await kit.running(OLD)
    assert kit.service.starts == 1, "no restart"
