"""SignedUpdateFirmware (OCPP 1.6 security extension) end to end, on the same release service and
real HTTP server as the unsigned updates (tests/integration/test_updates.py): a manufacturer CA
and signing certificate made here with ``cryptography``, the CA installed with
InstallCertificate(ManufacturerRootCertificate), the package signed with ECDSA P-256 /
SHA-256. OCTT TC_080 (secure update: Downloading, Downloaded, SignatureVerified, Installing,
Installed, and the FirmwareUpdated security event) and TC_081 (a bad signature:
InvalidSignature and InvalidFirmwareSignature) by id; a signing certificate from another CA and
an expired one are answered InvalidCertificate (InvalidFirmwareSigningCertificate).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v16 import call

from tests.pki import TestCa, pem

from . import test_updates as updates
from .test_updates import NEW, OLD, WITHIN, Kit

pytestmark = pytest.mark.timeout(180)

REQUEST_ID = 4711
served, kit = updates.served, updates.kit  # the update tests' fixtures: a running release


class Signer:
    """A firmware signing certificate from ``ca`` and its key."""

    def __init__(self, ca: TestCa, *, expired: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Firmware Signer")])
        self.certificate = pem(ca.issue(name, self.key.public_key(), expired=expired))

    def sign(self, path: Path) -> str:
        signature = self.key.sign(path.read_bytes(), ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()


@pytest.fixture
async def maker(kit: Kit) -> TestCa:
    ca = TestCa("Maker Root")
    result = await kit.site.csms.call(call.InstallCertificate(
        certificate_type="ManufacturerRootCertificate", certificate=ca.root_pem))
    assert result.status == "Accepted"
    return ca


async def _signed_update(kit: Kit, signer: Signer, signature: str,
                         retrieve: datetime | None = None) -> str:
    answer = await kit.site.csms.call(call.SignedUpdateFirmware(
        request_id=REQUEST_ID, firmware={
            "location": kit.http.url(f"evse-agent-{NEW}.tar.gz"),
            "retrieveDateTime": (retrieve or datetime.now(UTC)).isoformat(),
            "signingCertificate": signer.certificate, "signature": signature}))
    return str(answer.status)


async def _signed_statuses(kit: Kit, count: int) -> list[str]:
    csms = kit.site.csms
    try:
        await csms.wait_for(lambda: len(csms.signed_firmware_statuses) >= count, WITHIN)
    except TimeoutError:
        raise AssertionError(f"statuses {csms.signed_firmware_statuses}\n"
                             f"{kit.service.tail()}") from None
    assert {rid for _, rid in csms.signed_firmware_statuses} == {REQUEST_ID}
    return [status for status, _ in csms.signed_firmware_statuses]


def _events(kit: Kit) -> list[str]:
    return [kind for kind, _ in kit.site.csms.security_events]


async def test_tc_080_signed_update_verifies_installs_and_reports_firmware_updated(
        kit: Kit, maker: TestCa) -> None:
    signer = Signer(maker)
    package = kit.files / f"evse-agent-{NEW}.tar.gz"
    assert await _signed_update(kit, signer, signer.sign(package)) == "Accepted"
    assert await _signed_statuses(kit, 5) == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
    await kit.running(NEW)
    await kit.site.csms.wait_for(lambda: "FirmwareUpdated" in _events(kit), WITHIN)
    assert kit.site.csms.firmware_statuses == [], "no unsigned status for a signed update"
    assert kit.releases.trial() is None and kit.releases.report() is None
    trigger = await kit.site.csms.call(call.ExtendedTriggerMessage(
        requested_message="FirmwareStatusNotification"))
    assert trigger.status == "Accepted"
    await kit.site.csms.wait_for(
        lambda: kit.site.csms.signed_firmware_statuses[-1] == ("Idle", None), WITHIN)


async def test_tc_081_a_bad_signature_reports_invalid_signature_and_installs_nothing(
        kit: Kit, maker: TestCa) -> None:
    signer = Signer(maker)
    other = kit.files / "other.bin"
    other.write_bytes(b"not the package")
    assert await _signed_update(kit, signer, signer.sign(other)) == "Accepted"
    assert await _signed_statuses(kit, 3) == ["Downloading", "Downloaded", "InvalidSignature"]
    await kit.site.csms.wait_for(lambda: "InvalidFirmwareSignature" in _events(kit), WITHIN)
    # L01.FR.29: asked again, the last status sent (not Idle: it was not Installed).
    trigger = await kit.site.csms.call(call.ExtendedTriggerMessage(
        requested_message="FirmwareStatusNotification"))
    assert trigger.status == "Accepted"
    assert await _signed_statuses(kit, 4) == [
        "Downloading", "Downloaded", "InvalidSignature", "InvalidSignature"]
    await kit.running(OLD)
    assert kit.releases.names() == [kit.first], "nothing of the package was installed"
    assert kit.service.starts == 1


async def test_a_retrieve_date_ahead_is_download_scheduled_first(
        kit: Kit, maker: TestCa) -> None:
    """L01.FR.13 (a bad signature keeps it short: nothing is installed)."""
    signer = Signer(maker)
    other = kit.files / "other.bin"
    other.write_bytes(b"not the package")
    later = datetime.now(UTC) + timedelta(seconds=3)
    assert await _signed_update(kit, signer, signer.sign(other), later) == "Accepted"
    assert await _signed_statuses(kit, 4) == [
        "DownloadScheduled", "Downloading", "Downloaded", "InvalidSignature"]


@pytest.mark.parametrize("how", ["another CA", "expired"])
async def test_tc_080_an_untrusted_signing_certificate_is_answered_invalid_certificate(
        kit: Kit, maker: TestCa, how: str) -> None:
    signer = Signer(TestCa("Someone Else")) if how == "another CA" else \
        Signer(maker, expired=True)
    package = kit.files / f"evse-agent-{NEW}.tar.gz"
    assert await _signed_update(kit, signer, signer.sign(package)) == "InvalidCertificate"
    await kit.site.csms.wait_for(
        lambda: "InvalidFirmwareSigningCertificate" in _events(kit), WITHIN)
    assert kit.site.csms.signed_firmware_statuses == []
    assert [m for m, _ in kit.http.methods] == [], "nothing was downloaded"
    await kit.running(OLD)


async def test_an_unsigned_update_that_commits_raises_firmware_updated(kit: Kit) -> None:
    await kit.update(kit.http.url(f"evse-agent-{NEW}.tar.gz"))
    assert await kit.statuses(4) == ["Downloading", "Downloaded", "Installing", "Installed"]
    await kit.site.csms.wait_for(lambda: "FirmwareUpdated" in _events(kit), WITHIN)
