"""Security profile rules: raise only, what each profile needs, trial and fallback, and
secrets kept out of reprs and files others could read."""

from __future__ import annotations

import base64
import json
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from agent.security import certificates as certs
from agent.security import events
from agent.security.files import UnsafeKeyFile, check_private_files, config_file_warning
from agent.security.keystore import CSMS_ROOT, CertificateStore
from agent.security.profile import FALLBACK_AFTER, Credentials, SecurityProfiles, classify
from agent.security.tls import NoTrustedRoot
from tests.pki import TestCa, pem

KEY = "0123456789abcdef-key"


def profiles(tmp_path: Path, profile: int = 1, *, allow: bool = True
             ) -> tuple[SecurityProfiles, list[tuple[str, str]], list[str]]:
    reports: list[tuple[str, str]] = []
    reconnects: list[str] = []
    store = CertificateStore(tmp_path / "security")
    p = SecurityProfiles(tmp_path / "security" / "state.json", store, "ws://csms.example/ocpp",
                         "CP-1", Credentials(profile, KEY), allow_unencrypted=allow,
                         report=lambda kind, info: reports.append((kind, info)))
    p.reconnect = lambda: reconnects.append("reconnect")
    return p, reports, reconnects


def test_each_profile_picks_its_scheme_auth_and_tls(tmp_path: Path) -> None:
    p, _, _ = profiles(tmp_path, 1)
    assert p.endpoint() == "ws://csms.example/ocpp/CP-1"
    header = p.connect_options()["additional_headers"]["Authorization"]
    assert base64.b64decode(header.split()[1]).decode() == f"CP-1:{KEY}"
    p.active = Credentials(2, KEY)
    assert p.endpoint() == "wss://csms.example/ocpp/CP-1"
    with pytest.raises(NoTrustedRoot):
        p.connect_options()
    p._store.install_root(CSMS_ROOT, TestCa().root_pem, datetime.now(UTC))
    context = p.connect_options()["ssl"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"} <= {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256", "AES256-GCM-SHA384"}


def test_raise_only_with_what_the_new_profile_needs(tmp_path: Path) -> None:
    p, _, reconnects = profiles(tmp_path, 1, allow=False)
    assert p.change_profile("0") == "Rejected"  # TC_084
    assert p.change_profile("1") == "Rejected"  # A05.FR.01: equal is no upgrade
    assert p.change_profile("2") == "Rejected"  # no CSMS root
    assert p.change_profile("x") == "Rejected"
    assert p.change_profile("4") == "Rejected"
    p._store.install_root(CSMS_ROOT, TestCa().root_pem, datetime.now(UTC))
    assert p.change_profile("3") == "Rejected"  # no client certificate
    assert reconnects == []
    assert p.change_profile("2") == "Accepted"
    assert reconnects == ["reconnect"] and p.current.profile == 2 and p.active.profile == 1


def test_a_short_configured_password_is_no_authorization_key_for_profile_1(
        tmp_path: Path) -> None:
    """A05.FR.02: csms.password may be 8 characters (profile 0); profiles 1 and 2 need 16."""
    store = CertificateStore(tmp_path / "security")
    p = SecurityProfiles(tmp_path / "security" / "state.json", store, "ws://c/ocpp", "CP-1",
                         Credentials(0, "eight-ch"), allow_unencrypted=True,
                         report=lambda kind, info: None)
    assert p.change_profile("1") == "Rejected"
    assert p.change_key("sixteen-chars-ok") == "Accepted"
    p.connected()
    assert p.change_profile("1") == "Accepted"


def test_profile_1_needs_allow_unencrypted(tmp_path: Path) -> None:
    """A00.FR.201: plain ws:// only where the configuration says the network is trusted."""
    p, _, reconnects = profiles(tmp_path, 0, allow=False)
    assert p.change_profile("1") == "Rejected" and reconnects == []
    allowed, _, _ = profiles(tmp_path / "allowed", 0, allow=True)
    assert allowed.change_profile("1") == "Accepted"


def test_an_expired_csms_root_is_no_prerequisite(tmp_path: Path) -> None:
    """A05.FR.03: "No valid CentralSystemRootCertificate installed" -> Rejected."""
    p, _, reconnects = profiles(tmp_path, 1)
    old = TestCa(expired=True)  # valid until yesterday: installed while it was valid
    p._store.install_root(CSMS_ROOT, old.root_pem, old.certificate.not_valid_before_utc)
    assert p.change_profile("2") == "Rejected" and reconnects == []
    p._store.install_root(CSMS_ROOT, TestCa().root_pem, datetime.now(UTC))
    assert p.change_profile("2") == "Accepted"


def test_an_expired_client_certificate_is_no_prerequisite(tmp_path: Path) -> None:
    """A05.FR.04: "No valid ChargePointCertificate installed" -> Rejected."""
    p, _, _ = profiles(tmp_path, 2)
    ca = TestCa()
    p._store.install_root(CSMS_ROOT, ca.root_pem, datetime.now(UTC))
    key = p._store.new_pending_key()
    csr = x509.load_pem_x509_csr(certs.build_csr(key, "CP-1", "ACME").encode())
    leaf = ca.issue(csr.subject, csr.public_key(), client=True, expired=True)  # type: ignore[arg-type]
    p._store.accept_client_chain(pem(leaf), leaf.not_valid_before_utc)  # valid back then
    assert p._store.client_chain() is not None
    assert p.change_profile("3") == "Rejected"


def test_a_change_is_kept_only_after_it_connected(tmp_path: Path) -> None:
    p, reports, _ = profiles(tmp_path, 1)
    assert p.change_key("a-brand-new-key-123") == "Accepted"
    p.connected()
    assert p.active.authorization_key == "a-brand-new-key-123" and p.candidate is None
    state = tmp_path / "security" / "state.json"
    assert json.loads(state.read_text())["authorization_key"] == "a-brand-new-key-123"
    assert state.stat().st_mode & 0o777 == 0o600
    assert reports == [(events.RECONFIGURATION, "AuthorizationKey changed")]
    again, _, _ = profiles(tmp_path, 1)  # a restart reads what was kept
    assert again.active.authorization_key == "a-brand-new-key-123"


def test_a_change_that_cannot_connect_falls_back(tmp_path: Path) -> None:
    p, reports, _ = profiles(tmp_path, 1)
    assert p.change_key("short") == "Rejected"
    assert p.change_key("a-key-the-csms-refuses") == "Accepted"
    refused = InvalidStatus(Response(401, "Unauthorized", Headers()))
    for _ in range(FALLBACK_AFTER):
        p.failed(refused)
    assert p.candidate is None and p.current.authorization_key == KEY
    assert reports[0] == (events.FAILED_TO_AUTHENTICATE, "HTTP 401")
    assert reports[-1][0] == events.RECONFIGURATION and "back to" in reports[-1][1]
    assert p.fallback and "a-key-the-csms-refuses" not in p.fallback


def test_a_new_key_under_profile_3_is_kept_at_once_and_logged(tmp_path: Path) -> None:
    p, reports, reconnects = profiles(tmp_path, 3)
    assert p.change_key("a-brand-new-key-123") == "Accepted"
    assert p.active.authorization_key == "a-brand-new-key-123" and reconnects == []
    assert reports == [(events.RECONFIGURATION, "AuthorizationKey changed")]  # A01.FR.11


def test_the_key_never_shows_in_a_repr() -> None:
    assert KEY not in repr(Credentials(2, KEY))


def test_tls_failures_name_their_security_event() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "Hostname mismatch"
    assert classify(verify) == (events.INVALID_CSMS_CERTIFICATE, "Hostname mismatch")
    assert classify(ConnectionRefusedError())[0] is None


def test_private_files_with_open_modes_stop_the_agent(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("secret")
    key.chmod(0o600)
    check_private_files(tmp_path)
    key.chmod(0o640)
    with pytest.raises(UnsafeKeyFile, match="chmod 0600"):
        check_private_files(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("")
    config.chmod(0o640)
    assert config_file_warning(config) is None
    config.chmod(0o644)
    assert "0644" in (config_file_warning(config) or "")


def test_the_fallback_root_is_tried_after_the_new_one_fails_and_goes_once_the_new_one_works(
    tmp_path: Path
) -> None:
    """1.6 security whitepaper M05.FR.12/13 under AdditionalRootCertificateCheck."""
    p, reports, _ = profiles(tmp_path, 2)
    old, new = TestCa("Old"), TestCa("New")
    store = p._store
    store.replace_csms_root(old.root_pem, datetime.now(UTC))
    store.replace_csms_root(old.cross_sign(new), datetime.now(UTC))

    def trusted() -> list[str]:
        context = p.connect_options()["ssl"]
        assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN  # the rollover is an anchor
        return [c["subject"][0][0][1] for c in context.get_ca_certs()]

    assert trusted() == ["New"]
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    p.failed(ConnectionRefusedError())  # not a verification failure: same root again
    assert trusted() == ["New"]
    p.failed(verify)  # M05.FR.13
    assert trusted() == ["Old"]
    p.connected()  # with the fallback: it stays, and the next attempt tries the new root
    assert store.fallback_root() is not None and trusted() == ["New"]
    p.connected()  # with the new root: the fallback goes (M05.FR.12)
    assert store.fallback_root() is None and trusted() == ["New"]
    assert reports[-1][0] == events.RECONFIGURATION and "fallback" in reports[-1][1]
