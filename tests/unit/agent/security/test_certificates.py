"""Certificates: checks before use, hash data, CSR, the key store on disk."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from agent.core import messages as msg
from agent.security import certificates as certs
from agent.security.keystore import CSMS_ROOT, MANUFACTURER_ROOT, CertificateStore, InstallError
from tests.pki import TestCa, pem

NOW = datetime.now(UTC)


def test_a_root_must_be_a_valid_self_signed_ca() -> None:
    good = TestCa()
    assert certs.check_root(good.root_pem, NOW).subject == good.certificate.subject
    with pytest.raises(certs.CertificateError, match="expired"):
        certs.check_root(TestCa(expired=True).root_pem, NOW)
    with pytest.raises(certs.CertificateError, match="not a PEM"):
        certs.check_root("garbage", NOW)
    key = good.key
    leaf = good.issue(x509.Name([]), key.public_key())
    with pytest.raises(certs.CertificateError, match="not a CA"):
        certs.check_root(pem(leaf), NOW)
    with pytest.raises(certs.CertificateError, match="one root"):
        certs.check_root(good.root_pem + TestCa().root_pem, NOW)


def test_weak_rsa_keys_are_refused() -> None:
    ca = TestCa()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    leaf = ca.issue(x509.Name([]), weak.public_key())  # type: ignore[arg-type]
    with pytest.raises(certs.CertificateError, match="too weak"):
        certs._check_key_strength(leaf)


def test_hash_data_follows_the_ocsp_cert_id() -> None:
    ca = TestCa()
    data = certs.hash_data(ca.certificate)
    assert data.hash_algorithm == "SHA256" and len(data.issuer_name_hash) == 64
    assert data.serial_number == format(ca.certificate.serial_number, "x")
    padded = msg.CertificateHashData("sha256", data.issuer_name_hash.upper(),
                                     data.issuer_key_hash, "00" + data.serial_number)
    assert certs.same_certificate(data, padded)
    assert not certs.same_certificate(data, certs.hash_data(TestCa().certificate))


def test_the_csr_names_the_charger_and_the_cpo_and_the_chain_must_fit_the_key(
        tmp_path: Path) -> None:
    ca = TestCa()
    store = CertificateStore(tmp_path / "security")
    store.install_root(CSMS_ROOT, ca.root_pem, NOW)
    key = store.new_pending_key()
    assert (store.pending_key_path.stat().st_mode & 0o777) == 0o600
    csr = certs.build_csr(key, "CP-1", "ACME")
    request = x509.load_pem_x509_csr(csr.encode())
    assert request.subject.rfc4514_string() == "O=ACME,CN=CP-1"
    usage = request.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign  # A00.FR.512
    with pytest.raises(certs.CertificateError, match="not for the key"):
        store.accept_client_chain(ca.sign_csr(certs.build_csr(certs.new_private_key(), "X", "Y")),
                                  NOW)
    with pytest.raises(certs.CertificateError, match="not issued by an installed"):
        store.accept_client_chain(TestCa("Other").sign_csr(csr), NOW)
    assert store.client_chain() is None  # nothing taken into use by a bad chain
    chain = store.accept_client_chain(ca.sign_csr(csr), NOW)
    assert store.client_chain() == chain and store.pending_key() is None
    assert (store.client_key_path.stat().st_mode & 0o777) == 0o600
    assert certs.expires_within(chain[0], NOW + timedelta(days=80), timedelta(days=30))
    # M04.FR.05: DeleteCertificate only finds roots, never the charge point certificate.
    assert store.find(certs.hash_data(chain[0])) is None


def test_the_store_keeps_roots_by_type_and_refuses_when_full(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    store = CertificateStore(tmp_path / "security")
    assert (store.directory.stat().st_mode & 0o777) == 0o700
    one = store.install_root(MANUFACTURER_ROOT, TestCa().root_pem, NOW)
    assert store.install_root(MANUFACTURER_ROOT, pem(one.certificate), NOW).path == one.path
    assert [r.use for r in store.roots()] == [MANUFACTURER_ROOT]
    assert store.find(one.hash_data) == one
    monkeypatch.setattr("agent.security.keystore.STORE_MAX_LENGTH", 1)
    with pytest.raises(InstallError) as full:
        store.install_root(CSMS_ROOT, TestCa().root_pem, NOW)
    assert full.value.status == "Rejected"  # M05.FR.03
    store.delete_root(one)
    assert store.roots() == []


def test_under_additional_root_check_a_new_csms_root_must_be_signed_by_the_old_one(
    tmp_path: Path
) -> None:
    """1.6 security whitepaper M05.FR.08-12: one CSMS root plus a temporary fallback."""
    store = CertificateStore(tmp_path / "security")
    first, second, third = TestCa("First"), TestCa("Second"), TestCa("Third")
    store.replace_csms_root(first.root_pem, NOW)  # the first root: installed as usual
    with pytest.raises(InstallError, match="not signed by the installed") as refused:
        store.replace_csms_root(TestCa("Stranger").root_pem, NOW)  # M05.FR.10
    assert refused.value.status == "Rejected"
    with pytest.raises(InstallError):
        store.replace_csms_root(second.root_pem, NOW)  # self-signed: not signed by the old
    rollover = store.replace_csms_root(first.cross_sign(second), NOW)  # M05.FR.11
    fallback = store.fallback_root()
    assert fallback is not None and fallback.certificate == first.certificate
    assert [r.path for r in store.current_csms_roots()] == [rollover.path]
    assert certs.parse_chain(store.csms_roots_pem()) == [rollover.certificate]
    assert certs.parse_chain(store.csms_roots_pem(fallback=True)) == [first.certificate]
    assert len(store.roots(CSMS_ROOT)) == 2
    store.replace_csms_root(second.cross_sign(third), NOW)  # again: the older fallback goes
    assert {r.certificate.subject for r in store.roots(CSMS_ROOT)} == {
        third.certificate.subject, second.certificate.subject}  # the first one is gone
    fallback = store.fallback_root()
    assert fallback is not None and fallback.certificate.subject == second.certificate.subject
    assert store.drop_fallback() is not None  # M05.FR.12
    assert len(store.roots(CSMS_ROOT)) == 1 and store.fallback_root() is None
    assert store.csms_roots_pem(fallback=True) == ""


def test_deleting_the_new_root_leaves_the_fallback_as_the_root(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "security")
    old, new = TestCa("Old"), TestCa("New")
    store.replace_csms_root(old.root_pem, NOW)
    rollover = store.replace_csms_root(old.cross_sign(new), NOW)
    store.delete_root(rollover)
    assert store.fallback_root() is None
    assert [r.certificate for r in store.current_csms_roots()] == [old.certificate]


def _rsa_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Firmware Signer")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(7)
                   .not_valid_before(NOW - timedelta(days=1))
                   .not_valid_after(NOW + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, certificate


@pytest.mark.parametrize("scheme", ["RSA-PSS", "RSA PKCS#1 v1.5", "ECDSA"])
def test_a_firmware_signature_is_checked_in_each_scheme(tmp_path: Path, scheme: str) -> None:
    """L01.FR.04 names RSA-PSS over SHA-256; PKCS#1 v1.5 and ECDSA are accepted too."""
    firmware = tmp_path / "firmware.tar"
    firmware.write_bytes(b"a release" * 10_000)
    data = firmware.read_bytes()
    if scheme == "ECDSA":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        certificate = TestCa().issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "S")]),
                                     ec_key.public_key())
        signature = ec_key.sign(data, ec.ECDSA(hashes.SHA256()))
        wrong = ec_key.sign(data + b"!", ec.ECDSA(hashes.SHA256()))
    else:
        rsa_key, certificate = _rsa_signer()
        pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
               if scheme == "RSA-PSS" else padding.PKCS1v15())
        signature = rsa_key.sign(data, pad, hashes.SHA256())
        wrong = rsa_key.sign(data + b"!", pad, hashes.SHA256())
    certs.verify_file_signature(certificate, firmware, base64.b64encode(signature).decode())
    with pytest.raises(certs.CertificateError, match="does not match"):
        certs.verify_file_signature(certificate, firmware, base64.b64encode(wrong).decode())
