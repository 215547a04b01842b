"""A certificate authority for tests, made with ``cryptography``: roots, server certificates
(good, wrong host, expired), CSR signing, and server TLS contexts."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCa:
    __test__ = False  # not a pytest class

    def __init__(self, name: str = "Test CSMS Root", *, expired: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start, end = ((now - timedelta(days=30), now - timedelta(days=1)) if expired
                      else (now - timedelta(days=1), now + timedelta(days=365)))
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.key, hashes.SHA256()))

    @property
    def root_pem(self) -> str:
        return pem(self.certificate)

    def cross_sign(self, successor: TestCa) -> str:
        """``successor``'s root (its name and key) as a CA certificate signed by this CA: what
        a CSMS installs under AdditionalRootCertificateCheck when it rotates to a new root."""
        now = datetime.now(UTC)
        return pem(
            x509.CertificateBuilder().subject_name(successor.certificate.subject)
            .issuer_name(self.certificate.subject).public_key(successor.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.key, hashes.SHA256()))

    def issue(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *,
              hosts: tuple[str, ...] = (), expired: bool = False,
              client: bool = False) -> x509.Certificate:
        now = datetime.now(UTC)
        start, end = ((now - timedelta(days=30), now - timedelta(days=1)) if expired
                      else (now - timedelta(hours=1), now + timedelta(days=90)))
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(self.certificate.subject).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False))
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def server_files(self, directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1",),
                     expired: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.issue(_name(hosts[0]), key.public_key(), hosts=hosts, expired=expired)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"server-{certificate.serial_number:x}.pem"
        key_path = directory / f"server-{certificate.serial_number:x}.key"
        cert_path.write_text(pem(certificate))
        key_path.write_bytes(key_pem(key))
        return cert_path, key_path

    def sign_csr(self, csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        return pem(self.issue(csr.subject, public_key, client=True))


def server_context(ca: TestCa, directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1",),
                   expired: bool = False, client_ca: TestCa | None = None) -> ssl.SSLContext:
    """A TLS server context with a certificate from ``ca``; with ``client_ca`` it asks for a
    client certificate (optional, so profile 2 chargers still connect) and verifies it."""
    cert_path, key_path = ca.server_files(directory, hosts=hosts, expired=expired)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=client_ca.root_pem)
    return context
