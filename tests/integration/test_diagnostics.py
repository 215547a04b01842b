"""GetDiagnostics end to end (OCTT TC_045_1, TC_045_2): the agent builds the bundle and uploads
it to real HTTP (PUT, and POST where PUT is refused) and FTP servers on loopback; the strict 1.6
CSMS sees Uploading then Uploaded or UploadFailed. TriggerMessage reports the current status.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import call

from evsim.site import SimSite, SiteOptions, free_port
from tests.pki import TestCa, server_context

from .conftest import RunningAgent
from .file_servers import FtpFiles, HttpFiles, file_servers, ftp_files, http_files

PASSWORD = "diag-secret-4711"


@pytest.fixture
def site_options(tmp_path: Path) -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_csms=f'password = "{PASSWORD}"',
                       extra_toml=f"[update]\nreleases = '{tmp_path / 'releases'}'\n"
                                  "transfer_timeout = 5\n")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[HttpFiles, FtpFiles, Path]]:
    with file_servers(tmp_path / "uploads") as served:
        yield served


async def _statuses(site: SimSite, count: int) -> list[str]:
    await site.csms.wait_for(lambda: len(site.csms.diagnostics_statuses) >= count, 30)
    await asyncio.sleep(0.3)
    return list(site.csms.diagnostics_statuses)


def _members(bundle: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers()}


@pytest.mark.parametrize("how", ["http PUT", "http POST", "ftp"])
async def test_tc_045_1_get_diagnostics_uploads_the_bundle(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path], how: str
) -> None:
    http, ftp, root = servers
    await site.csms.wait_for_action("BootNotification")
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    http.refuse_put = how == "http POST"
    location = ftp.url("", user=True) if how == "ftp" else http.url("diagnostics/")
    result = await site.csms.call(call.GetDiagnostics(location=location, retries=1))
    assert result.file_name and result.file_name.startswith("diagnostics-SIM-0001-")
    assert await _statuses(site, 2) == ["Uploading", "Uploaded"]
    bundle = (root / result.file_name).read_bytes() if how == "ftp" else \
        http.uploads[result.file_name]
    if how == "http POST":
        assert [m for m, _ in http.methods] == ["PUT", "POST"]
    members = _members(bundle)
    assert sorted(members) == ["config.json", "journal.txt", "ocpp-messages.jsonl",
                               "store.json", "versions.json"]
    assert PASSWORD not in bundle.decode("latin-1") and \
        all(PASSWORD not in text for text in members.values()), "secrets are masked"
    config = json.loads(members["config.json"])
    assert config["charger"]["id"] == "SIM-0001" and config["csms"]["password"] == "***"
    messages = members["ocpp-messages.jsonl"]
    actions = [json.loads(line).get("action") for line in messages.splitlines()]
    assert "BootNotification" in actions and "GetDiagnostics" in actions
    if how == "ftp":
        assert "ftp-secret" not in messages and "ftp://tech:***@127.0.0.1" in messages
    assert json.loads(members["versions.json"])["agent"] == "0.1.0"
    store = json.loads(members["store.json"])
    assert store["transactions_open"] == 0 and "journal_pending" in store
    assert site.csms.violations == []


async def test_tc_045_1_the_message_log_covers_the_requested_window(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    http, _, _ = servers
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    await asyncio.sleep(0.1)
    start = datetime.now(UTC)
    await site.csms.call(call.TriggerMessage(requested_message="Heartbeat"))
    await site.csms.wait_for_action("Heartbeat")
    result = await site.csms.call(call.GetDiagnostics(
        location=http.url(""), start_time=start.isoformat()))
    assert await _statuses(site, 2) == ["Uploading", "Uploaded"]
    lines = _members(http.uploads[result.file_name])["ocpp-messages.jsonl"].splitlines()
    actions = {json.loads(line).get("action") for line in lines}
    assert "Heartbeat" in actions and "BootNotification" not in actions


async def test_tc_045_2_upload_to_a_failing_location_reports_upload_failed(
    site: SimSite, agent: RunningAgent
) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    location = f"ftp://127.0.0.1:{free_port()}/"
    result = await site.csms.call(call.GetDiagnostics(location=location, retries=1,
                                                      retry_interval=0))
    assert result.file_name
    assert await _statuses(site, 2) == ["Uploading", "UploadFailed"]
    # normal operation continues
    answer = await site.csms.call(call.TriggerMessage(requested_message="StatusNotification",
                                                      connector_id=1))
    assert answer.status == "Accepted"
    assert site.csms.violations == []


@pytest.mark.parametrize("message", ["DiagnosticsStatusNotification",
                                     "FirmwareStatusNotification"])
async def test_tc_054_trigger_reports_idle_when_nothing_runs(
    site: SimSite, agent: RunningAgent, message: str
) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    result = await site.csms.call(call.TriggerMessage(requested_message=message))
    assert result.status == "Accepted"
    frame = await site.csms.wait_for_action(message)
    assert frame.payload == {"status": "Idle"}


async def test_tc_045_trigger_during_an_upload_reports_uploading(
    site: SimSite, agent: RunningAgent
) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    location = f"http://127.0.0.1:{free_port()}/"
    await site.csms.call(call.GetDiagnostics(location=location, retries=2, retry_interval=2))
    await site.csms.wait_for(lambda: site.csms.diagnostics_statuses == ["Uploading"])
    await site.csms.call(call.TriggerMessage(requested_message="DiagnosticsStatusNotification"))
    assert await _statuses(site, 2) == ["Uploading", "Uploading"]
    assert await _statuses(site, 3) == ["Uploading", "Uploading", "UploadFailed"]


async def _log_statuses(site: SimSite, count: int) -> list[tuple[str, int | None]]:
    await site.csms.wait_for(lambda: len(site.csms.log_statuses) >= count, 30)
    await asyncio.sleep(0.3)
    return list(site.csms.log_statuses)


async def test_tc_079_get_security_log_uploads_the_security_log(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    http, _, _ = servers
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    await site.csms.wait_for(lambda: any(k == "StartupOfTheDevice"
                                         for k, _ in site.csms.security_events))
    result = await site.csms.call(call.GetLog(
        log_type="SecurityLog", request_id=7, log={"remoteLocation": http.url("logs/")}))
    assert result.status == "Accepted" and result.filename.startswith("security-log-SIM-0001-")
    assert await _log_statuses(site, 2) == [("Uploading", 7), ("Uploaded", 7)]
    records = [json.loads(line) for line in
               _members(http.uploads[result.filename])["security-log.jsonl"].splitlines()]
    assert "StartupOfTheDevice" in [r["type"] for r in records]
    trigger = await site.csms.call(call.ExtendedTriggerMessage(
        requested_message="LogStatusNotification"))
    assert trigger.status == "Accepted"
    assert await _log_statuses(site, 3) == [("Uploading", 7), ("Uploaded", 7), ("Idle", None)]
    assert site.csms.violations == []


async def test_tc_079_a_window_after_every_record_uploads_an_empty_security_log(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    http, _, _ = servers
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    await asyncio.sleep(1.1)  # the log's times are whole seconds
    result = await site.csms.call(call.GetLog(
        log_type="SecurityLog", request_id=8, log={
            "remoteLocation": http.url(""), "oldestTimestamp": datetime.now(UTC).isoformat()}))
    assert await _log_statuses(site, 2) == [("Uploading", 8), ("Uploaded", 8)]
    assert _members(http.uploads[result.filename])["security-log.jsonl"] == ""


async def test_get_diagnostics_log_uploads_the_bundle_over_ftp(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    _, ftp, root = servers
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    result = await site.csms.call(call.GetLog(
        log_type="DiagnosticsLog", request_id=9, log={"remoteLocation": ftp.url("", user=True)}))
    assert result.status == "Accepted"
    assert await _log_statuses(site, 2) == [("Uploading", 9), ("Uploaded", 9)]
    members = _members((root / result.filename).read_bytes())
    assert "config.json" in members and "ocpp-messages.jsonl" in members
    assert site.csms.diagnostics_statuses == [], "GetLog reports LogStatusNotification only"


@pytest.mark.parametrize(("where", "expected"), [
    ("ftp wrong password", "PermissionDenied"),
    ("sftp", "NotSupportedOperation"),
    ("no host", "BadMessage"),
    ("nobody listens", "UploadFailure"),
])
async def test_get_log_failures_report_the_reason(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path],
    where: str, expected: str
) -> None:
    _, ftp, _ = servers
    port = ftp.url("").split(":")[2].split("/")[0]
    location = {"ftp wrong password": f"ftp://tech:wrong@127.0.0.1:{port}/",
                "sftp": "sftp://127.0.0.1/logs/",
                "no host": "http:///logs/",
                "nobody listens": f"http://127.0.0.1:{free_port()}/"}[where]
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    result = await site.csms.call(call.GetLog(
        log_type="SecurityLog", request_id=10, retries=1, retry_interval=0,
        log={"remoteLocation": location}))
    assert result.status == "Accepted"
    assert await _log_statuses(site, 2) == [("Uploading", 10), (expected, 10)]
    assert site.csms.violations == []


async def test_a_new_get_log_cancels_the_running_one_with_accepted_canceled(
    site: SimSite, agent: RunningAgent, servers: tuple[HttpFiles, FtpFiles, Path]
) -> None:
    http, _, _ = servers
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    first = await site.csms.call(call.GetLog(  # nobody listens: it waits between retries
        log_type="SecurityLog", request_id=11, retries=3, retry_interval=30,
        log={"remoteLocation": f"http://127.0.0.1:{free_port()}/"}))
    assert first.status == "Accepted"
    await site.csms.wait_for(lambda: site.csms.log_statuses == [("Uploading", 11)])
    second = await site.csms.call(call.GetLog(
        log_type="SecurityLog", request_id=12, log={"remoteLocation": http.url("")}))
    assert second.status == "AcceptedCanceled"
    assert await _log_statuses(site, 3) == [("Uploading", 11), ("Uploading", 12),
                                            ("Uploaded", 12)]
    assert second.filename in http.uploads
    assert site.csms.violations == []


@pytest.mark.parametrize("scheme", ["https", "ftps"])
@pytest.mark.parametrize("trusted", [True, False])
async def test_get_diagnostics_uploads_over_https_or_ftps_to_a_server_it_trusts(
    site: SimSite, agent: RunningAgent, tmp_path: Path, scheme: str, trusted: bool
) -> None:
    """https and ftps uploads trust the system's store plus the installed roots
    (docs/updates.md): a server whose certificate comes from an installed CSMS root gets the
    bundle, one from an unknown CA gets nothing and the CSMS hears UploadFailed. The FTPS
    server is explicit FTPS requiring TLS on the control and the data connections."""
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    ca = TestCa("Operator Files Root")
    installed = await site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate", certificate=ca.root_pem))
    assert installed.status == "Accepted"
    server_ca = ca if trusted else TestCa("Somebody Else's Root")
    root = tmp_path / "uploads"
    root.mkdir()
    served = (http_files(root, server_context(server_ca, tmp_path / "tls")) if scheme == "https"
              else ftp_files(root, server_ca.server_files(tmp_path / "tls")))
    with served as server:
        location = server.url("diagnostics/") if isinstance(server, HttpFiles) else \
            server.url("", user=True)
        result = await site.csms.call(call.GetDiagnostics(location=location))
        assert result.file_name
        final = await _statuses(site, 2)
    received = (server.uploads if isinstance(server, HttpFiles) else
                {path.name: path.read_bytes() for path in root.iterdir()})
    if trusted:
        assert final == ["Uploading", "Uploaded"]
        assert "config.json" in _members(received[result.file_name])
    else:
        assert final == ["Uploading", "UploadFailed"]
        assert received == {}
