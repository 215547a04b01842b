"""The security service between the CSMS session and the core: its keys in
Get/ChangeConfiguration, ExtendedTriggerMessage, what waits for the reply, certificate expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from agent.core import messages as msg
from agent.core.types import RequestStatus
from agent.security.keystore import CSMS_ROOT, CertificateStore
from agent.security.memory import Free
from agent.security.profile import Credentials, SecurityProfiles
from agent.security.service import INVALID_MESSAGES_EVERY, SecurityService
from agent.security_log import SecurityLog
from tests.pki import TestCa, pem

KEY = "0123456789abcdef-key"


class Rig:
    def __init__(self, tmp_path: Path, now: datetime | None = None,
                 free: Callable[[], Free] | None = None,
                 clock_offset: Callable[[], float] | None = None) -> None:
        directory = tmp_path / "security"
        self.store = CertificateStore(directory)
        self.sent: list[msg.OutboundReq] = []
        self.durable: list[msg.OutboundReq] = []
        self.core_requests: list[msg.CsmsRequest] = []
        self.reconnects = 0
        self.clock = now or datetime.now(UTC)
        profiles = SecurityProfiles(directory / "state.json", self.store, "ws://c/ocpp", "CP-1",
                                    Credentials(2, KEY), allow_unencrypted=False,
                                    report=lambda kind, info: None)
        self.service = SecurityService(
            charge_point_id="CP-1", cpo_name="ACME", directory=directory, store=self.store,
            profiles=profiles, security_log=SecurityLog(tmp_path),
            durable=lambda ref, req: self.durable.append(req), call=self._call,
            new_ref=lambda: "ref", now=lambda: self.clock, free=free,
            clock_offset=clock_offset)
        self.log = SecurityLog(tmp_path)
        self.service.reconnect = self._reconnect
        self.handle = self.service.commands(self._core)

    def _reconnect(self) -> None:
        self.reconnects += 1

    async def _call(self, ref: str, req: msg.OutboundReq) -> msg.InboundConf:
        self.sent.append(req)
        return msg.CertificateSigningResult(True)

    def _core(self, request: msg.CsmsRequest) -> Any:
        self.core_requests.append(request)
        match request:
            case msg.CsmsGetConfiguration(keys=keys):
                known = tuple(k for k in keys if k == "HeartbeatInterval")
                return msg.GetConfigurationResult(
                    (msg.ConfigurationEntry("HeartbeatInterval", "300", False),),
                    tuple(k for k in keys if k not in known))
            case msg.CsmsReset():
                return msg.CommandResult(RequestStatus.ACCEPTED)
        return msg.StatusResult("Accepted")


def test_get_configuration_adds_the_security_keys_without_the_authorization_key_value(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    everything = rig.handle(msg.CsmsGetConfiguration())
    assert isinstance(everything, msg.GetConfigurationResult)
    keys = {e.key: e for e in everything.entries}
    assert keys["AuthorizationKey"].value is None and not keys["AuthorizationKey"].readonly
    assert keys["SecurityProfile"].value == "2" and keys["CpoName"].value == "ACME"
    assert KEY not in repr(everything)
    some = rig.handle(msg.CsmsGetConfiguration(("securityprofile", "Nope", "HeartbeatInterval")))
    assert isinstance(some, msg.GetConfigurationResult)
    assert [e.key for e in some.entries] == ["HeartbeatInterval", "SecurityProfile"]
    assert some.unknown_keys == ("Nope",)


def test_read_only_security_keys_are_rejected_and_others_go_to_the_core(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    change = msg.CsmsChangeConfiguration
    assert rig.handle(change("CertificateStoreMaxLength", "5")) == \
        msg.ChangeConfigurationResult("Rejected")
    assert rig.handle(change("CpoName", "New CPO")) == msg.ChangeConfigurationResult("Accepted")
    assert rig.service.cpo_name == "New CPO"
    rig.handle(change("HeartbeatInterval", "10"))
    assert rig.core_requests == [change("HeartbeatInterval", "10")]


async def test_extended_trigger_signs_after_the_reply_and_delegates_the_rest(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    trigger = msg.CsmsExtendedTriggerMessage
    assert rig.handle(trigger("SignChargePointCertificate")) == msg.StatusResult("Accepted")
    await asyncio.sleep(0)
    assert rig.sent == []  # not before the answer is out
    rig.service.replied()
    await asyncio.sleep(0.05)
    assert isinstance(rig.sent[0], msg.CertificateSigningRequest)
    assert "BEGIN CERTIFICATE REQUEST" in rig.sent[0].csr
    assert rig.handle(trigger("StatusNotification", 1)) == msg.StatusResult("Accepted")
    assert rig.core_requests[-1] == msg.CsmsTriggerMessage("StatusNotification", 1)
    # The security extension's two: the signed firmware status and GetLog's status, for
    # agent.maintenance under names a plain TriggerMessage cannot carry.
    assert rig.handle(trigger("FirmwareStatusNotification")) == msg.StatusResult("Accepted")
    assert rig.core_requests[-1] == msg.CsmsTriggerMessage("SignedFirmwareStatusNotification")
    assert rig.handle(trigger("LogStatusNotification")) == msg.StatusResult("Accepted")
    assert rig.core_requests[-1] == msg.CsmsTriggerMessage("LogStatusNotification")


def test_an_accepted_reset_is_a_security_event(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.handle(msg.CsmsReset(hard=True))
    assert [e.type for e in rig.durable if isinstance(e, msg.SecurityEventRaised)] == [
        "ResetOrReboot"]


async def test_the_client_certificate_is_renewed_ahead_of_its_expiry(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ca = TestCa()
    rig.store.install_root(CSMS_ROOT, ca.root_pem, rig.clock)
    from agent.security import certificates as certs

    key = rig.store.new_pending_key()
    rig.store.accept_client_chain(ca.sign_csr(certs.build_csr(key, "CP-1", "ACME")), rig.clock)
    rig.service.check_expiry()
    await asyncio.sleep(0.05)
    assert rig.sent == []  # 90 days left
    rig.clock += timedelta(days=70)
    rig.service.check_expiry()
    await asyncio.sleep(0.05)
    assert len(rig.sent) == 1 and isinstance(rig.sent[0], msg.CertificateSigningRequest)
    assert rig.service.status()["client_certificate_expires"] is not None


def events_sent(rig: Rig) -> list[tuple[str, str | None]]:
    return [(req.type, req.tech_info) for req in rig.durable
            if isinstance(req, msg.SecurityEventRaised)]


def test_an_opened_enclosure_is_one_critical_tamper_event_per_opening(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.service.tamper(True)
    rig.service.tamper(True)  # the same state twice (the start-up read and its edge)
    rig.service.tamper(False)
    rig.service.tamper(True)
    assert [kind for kind, _ in events_sent(rig)] == ["TamperDetectionActivated"] * 2
    logged = list(rig.log.records())
    assert [r.type for r in logged] == ["TamperDetectionActivated"] * 2
    assert all(r.critical for r in logged)


def test_invalid_messages_are_reported_at_most_once_per_window_with_a_count(
        tmp_path: Path) -> None:
    start = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    rig = Rig(tmp_path, now=start)
    for _ in range(50):  # a CSMS sending garbage in a loop
        rig.service.invalid_message("FormationViolation", None)
        rig.clock += timedelta(seconds=1)
    rig.service.invalid_message("TypeConstraintViolation", "ChangeConfiguration")
    assert events_sent(rig) == [("InvalidMessages", "FormationViolation answered to a frame")]
    rig.clock = start + INVALID_MESSAGES_EVERY
    rig.service.invalid_message("NotImplemented", "FlyToTheMoon")
    assert events_sent(rig)[1] == (
        "InvalidMessages",
        "NotImplemented answered to FlyToTheMoon; 50 more since 2026-12-07T06:00:00Z")
    assert not any(r.critical for r in rig.log.records())  # not critical in the list


def test_a_clock_set_back_does_not_silence_invalid_messages(tmp_path: Path) -> None:
    rig = Rig(tmp_path, now=datetime(2026, 12, 7, 6, 0, tzinfo=UTC))
    rig.service.invalid_message("FormationViolation", None)
    rig.clock -= timedelta(days=1)
    rig.service.invalid_message("FormationViolation", None)
    assert len(events_sent(rig)) == 2


def test_memory_exhaustion_is_raised_once_per_shortage(tmp_path: Path) -> None:
    readings = iter([Free(0.50, 0.40), Free(0.04, 0.40), Free(0.03, 0.02), Free(0.06, 0.02),
                     Free(0.50, 0.50), Free(0.01, None)])
    rig = Rig(tmp_path, free=lambda: next(readings))
    for _ in range(6):
        rig.service.check_memory()
    assert events_sent(rig) == [
        ("MemoryExhaustion", "getting full: disk 4.0% free"),
        ("MemoryExhaustion", "getting full: RAM 2.0% free"),
        ("MemoryExhaustion", "getting full: disk 1.0% free"),  # after it had recovered
    ]
    assert all(r.critical for r in rig.log.records())


def test_memory_that_cannot_be_measured_is_logged_not_raised(tmp_path: Path) -> None:
    def broken() -> Free:
        raise OSError("no such file system")

    rig = Rig(tmp_path, free=broken)
    rig.service.check_memory()
    assert events_sent(rig) == []


def test_a_full_store_rejects_without_calling_the_root_invalid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path)
    install = msg.CsmsInstallCertificate
    assert rig.handle(install(CSMS_ROOT, TestCa("One").root_pem)) == msg.StatusResult("Accepted")
    monkeypatch.setattr("agent.security.keystore.STORE_MAX_LENGTH", 1)
    assert rig.handle(install(CSMS_ROOT, TestCa("Two").root_pem)) == \
        msg.StatusResult("Rejected")  # M05.FR.03
    assert rig.handle(install(CSMS_ROOT, "not a certificate")) == msg.StatusResult("Rejected")
    assert [kind for kind, _ in events_sent(rig)] == ["InvalidCentralSystemCertificate"]


def test_a_system_time_that_was_set_is_a_critical_event(tmp_path: Path) -> None:
    offsets = iter([1.7e9, 1.7e9 + 0.03, 1.7e9 + 0.05, 1.7e9 + 86_400.05, 1.7e9 + 86_397.0])
    rig = Rig(tmp_path, clock_offset=lambda: next(offsets))  # the first: at construction
    for _ in range(4):
        rig.service.check_clock()
    assert events_sent(rig) == [("SettingSystemTime", "the system time was set +86400 s"),
                                ("SettingSystemTime", "the system time was set -3 s")]
    assert all(r.critical for r in rig.log.records())


def test_delete_certificate_answers_not_found_failed_and_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path)
    first, second = (rig.store.install_root(CSMS_ROOT, TestCa(name).root_pem, rig.clock)
                     for name in ("One", "Two"))
    delete = msg.CsmsDeleteCertificate
    unknown = msg.CertificateHashData("SHA256", "00" * 32, "11" * 32, "42")
    assert rig.handle(delete(unknown)) == msg.StatusResult("NotFound")  # M04.FR.04

    def broken(root: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(rig.store, "delete_root", broken)
    assert rig.handle(delete(first.hash_data)) == msg.StatusResult("Failed")  # M04.FR.03
    monkeypatch.undo()
    assert rig.handle(delete(first.hash_data)) == msg.StatusResult("Accepted")
    assert rig.handle(delete(second.hash_data)) == msg.StatusResult("Failed")  # the last one


def test_a_chain_over_certificate_signed_max_chain_size_is_rejected(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    answer = rig.handle(msg.CsmsCertificateSigned("x" * 10_001))
    assert answer == msg.StatusResult("Rejected")
    assert events_sent(rig) == [("InvalidChargePointCertificate", "chain too long")]


def _leaf_from(ca: TestCa, csr_pem: str, start: datetime) -> str:
    """A client certificate for the CSR, valid from ``start`` for 90 days."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    leaf = (x509.CertificateBuilder().subject_name(csr.subject)
            .issuer_name(ca.certificate.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256()))
    return pem(leaf)


async def _csr_sent(tmp_path: Path) -> tuple[Rig, TestCa, str, datetime]:
    """A rig with a CSMS root whose service has sent a CSR: (rig, CA, CSR, now)."""
    start = datetime.now(UTC).replace(microsecond=0)
    rig = Rig(tmp_path, now=start)
    ca = TestCa()
    rig.store.install_root(CSMS_ROOT, ca.root_pem, start)
    assert await rig.service.request_certificate()
    csr = rig.sent[-1]
    assert isinstance(csr, msg.CertificateSigningRequest)
    return rig, ca, csr.csr, start


async def test_a_certificate_valid_from_later_is_held_until_then(tmp_path: Path) -> None:
    """A02.FR.08: switch to the new certificate once its "not before" has passed."""
    rig, ca, csr, start = await _csr_sent(tmp_path)
    later = start + timedelta(hours=2)
    answer = rig.handle(msg.CsmsCertificateSigned(_leaf_from(ca, csr, later)))
    assert answer == msg.StatusResult("Accepted")
    assert rig.store.client_chain() is None and rig.store.next_chain() is not None
    rig.service.switch_due_certificate()
    assert rig.store.client_chain() is None  # not yet
    rig.clock = later + timedelta(seconds=1)
    rig.service.switch_due_certificate()
    chain = rig.store.client_chain()
    assert chain is not None and chain[0].not_valid_before_utc == later
    assert rig.store.next_chain() is None and rig.store.pending_key() is None
    assert (rig.store.client_key_path.stat().st_mode & 0o777) == 0o600
    assert events_sent(rig) == []  # nothing invalid about it


async def test_an_expired_certificate_is_still_rejected(tmp_path: Path) -> None:
    rig, ca, csr, start = await _csr_sent(tmp_path)
    old = _leaf_from(ca, csr, start - timedelta(days=100))
    assert rig.handle(msg.CsmsCertificateSigned(old)) == msg.StatusResult("Rejected")
    assert [kind for kind, _ in events_sent(rig)] == ["InvalidChargePointCertificate"]
