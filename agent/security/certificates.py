"""X.509 for the charger, in one place: the only module that imports ``cryptography``.

What the OCPP 1.6 security extension needs of certificates, as plain functions over PEM text:

* :func:`parse_chain` reads a PEM bundle (the CertificateSigned ``certificateChain``, an
  InstallCertificate ``certificate``) and raises :class:`CertificateError` for anything else;
* :func:`hash_data` is the CertificateHashDataType of a certificate (the OCSP CertID fields:
  hashes of the issuer's name and public key, and the serial number in hex), which the CSMS
  uses to name a certificate in GetInstalledCertificateIds and DeleteCertificate;
* :func:`check_root`, :func:`check_replacement_root` and :func:`check_client_chain` are the
  validity checks done before a certificate is taken into use (period, CA flag, signatures
  up to a trusted root, the key the charger generated, key strength as TC_087 asks);
* :func:`check_signing_certificate` and :func:`verify_file_signature` are SignedUpdateFirmware's
  checks: the signing certificate against the installed ManufacturerRootCertificates, then
  the package's signature (RSA PKCS#1 v1.5 or ECDSA, SHA-256, base64) over the whole file;
* :func:`new_private_key` and :func:`build_csr` make the charger's own key pair and the CSR
  for SignCertificate (CN = charge point id, O = CpoName).

Chain checks are done by hand with ``Certificate.verify_directly_issued_by`` (issuer name and
signature, cryptography >= 40) rather than ``cryptography.x509.verification``, whose RFC 5280
web-PKI profile refuses many private CSMS CAs (missing key identifiers, EKUs).

The other modules import this one inside the functions that handle a certificate, never at
module level (``cryptography`` is about 8 MB resident): a charger without certificates, the
usual case at security profiles 0 and 1, never loads it (tests/unit/agent/test_app_imports.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core import messages as msg

MIN_RSA_BITS = 2048  # TC_087: RSA/DSA keys of at least 2048 bits
MIN_EC_BITS = 224  # TC_087: EC keys of at least 224 bits
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}
HASH_ALGORITHMS = tuple(_HASHES)


class CertificateError(ValueError):
    """A certificate or chain is malformed, expired, untrusted or too weak; ``args[0]`` says
    which, in words fit for a log and a SecurityEventNotification techInfo."""


HashData = msg.CertificateHashData


def same_certificate(a: HashData, b: HashData) -> bool:
    """Equal, ignoring case and leading zeros of the serial (CSMSs differ there)."""
    return (a.hash_algorithm.upper() == b.hash_algorithm.upper()
            and a.issuer_name_hash.lower() == b.issuer_name_hash.lower()
            and a.issuer_key_hash.lower() == b.issuer_key_hash.lower()
            and a.serial_number.lower().lstrip("0") == b.serial_number.lower().lstrip("0"))


def parse_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, leaf first; at least one."""
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from None
    return chain


def to_pem(certificates: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def to_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate | None = None,
              algorithm: str = "SHA256") -> HashData:
    """The certificate's CertificateHashData; a root is its own issuer."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer or certificate, _HASHES[algorithm])
    request = builder.build()
    return HashData(algorithm, request.issuer_name_hash.hex(), request.issuer_key_hash.hex(),
                    format(certificate.serial_number, "x"))


def not_after(certificate: x509.Certificate) -> datetime:
    return certificate.not_valid_after_utc


def _check_period(certificate: x509.Certificate, now: datetime) -> None:
    if now < certificate.not_valid_before_utc:
        raise CertificateError(f"{subject(certificate)} is not valid before "
                               f"{certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        raise CertificateError(f"{subject(certificate)} expired on "
                               f"{certificate.not_valid_after_utc.isoformat()}")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _check_key_strength(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise CertificateError(f"{subject(certificate)}: a {key.key_size}-bit key is too weak "
                               f"(at least {MIN_RSA_BITS})")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        raise CertificateError(f"{subject(certificate)}: a {key.curve.key_size}-bit EC key is "
                               f"too weak (at least {MIN_EC_BITS})")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_root(pem: str, now: datetime) -> x509.Certificate:
    """A root certificate fit to install: one self-signed CA certificate, in its validity
    period, with a key strong enough. Raises CertificateError."""
    root = _one_ca(pem, now)
    if not _issued_by(root, root):
        raise CertificateError(f"{subject(root)} is not self-signed")
    return root


def _one_ca(pem: str, now: datetime) -> x509.Certificate:
    """The one CA certificate of ``pem``, in its period, with a key strong enough."""
    chain = parse_chain(pem)
    if len(chain) != 1:
        raise CertificateError(f"expected one root certificate, got {len(chain)}")
    certificate = chain[0]
    _check_period(certificate, now)
    if not _is_ca(certificate):
        raise CertificateError(f"{subject(certificate)} is not a CA certificate")
    _check_key_strength(certificate)
    return certificate


def check_replacement_root(pem: str, olds: list[x509.Certificate],
                           now: datetime) -> tuple[x509.Certificate, x509.Certificate]:
    """A CentralSystemRootCertificate that may replace one of ``olds`` under
    AdditionalRootCertificateCheck (1.6 security whitepaper, M05.FR.09/10: "the new Root
    Certificate MUST be signed by the old Root Certificate it is replacing"): one CA
    certificate, in its period, strong enough, signed by an old root (so not self-signed:
    the CSMS's rollover certificate for its new root key). Returns (new, the old one that
    signed it); raises CertificateError."""
    new = _one_ca(pem, now)
    for old in olds:
        if _issued_by(new, old):
            return new, old
    raise CertificateError(f"{subject(new)} is not signed by the installed "
                           "CentralSystemRootCertificate it would replace "
                           "(AdditionalRootCertificateCheck)")


def check_client_chain(pem: str, roots: list[x509.Certificate], key_pem: bytes,
                       now: datetime) -> list[x509.Certificate]:
    """The chain of a CertificateSigned, checked before it is used for TLS: the leaf holds
    the public half of ``key_pem`` (the key the charger generated for its CSR), no
    certificate has expired (one may start later: the charger holds it until then, whitepaper
    A02.FR.08), each is signed by the next, and the last is signed by one of ``roots`` (the
    installed CSMS roots). Returns the chain, leaf first."""
    chain = parse_chain(pem)
    leaf = chain[0]
    key = serialization.load_pem_private_key(key_pem, password=None)
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise CertificateError("the certificate is not for the key this charger generated")
    _check_chain(chain, roots, now, "CentralSystemRootCertificate", not_yet_valid=True)
    return chain


def _check_chain(chain: list[x509.Certificate], roots: list[x509.Certificate], now: datetime,
                 root_type: str, *, not_yet_valid: bool = False) -> None:
    """Every certificate in its period (or, with ``not_yet_valid``, not expired) and strong
    enough, each signed by the next, the last by one of ``roots`` (installed roots of
    ``root_type``)."""
    for certificate in chain:
        _check_period(certificate, max(now, certificate.not_valid_before_utc)
                      if not_yet_valid else now)
        _check_key_strength(certificate)
    for certificate, issuer in itertools.pairwise(chain):
        if not _is_ca(issuer) or not _issued_by(certificate, issuer):
            raise CertificateError(f"{subject(certificate)} is not issued by {subject(issuer)}")
    if not roots:
        raise CertificateError(f"no {root_type} is installed")
    if not any(_is_ca(root) and _issued_by(chain[-1], root) for root in roots):
        raise CertificateError(f"{subject(chain[-1])} is not issued by an installed "
                               f"{root_type}")


def check_signing_certificate(pem: str, roots: list[x509.Certificate],
                              now: datetime) -> x509.Certificate:
    """The firmware signing certificate of a SignedUpdateFirmware (the leaf, optionally
    followed by intermediates), checked like a client chain: every certificate in its period
    with a key strong enough, each signed by the next, the last by one of ``roots`` (the
    installed ManufacturerRootCertificates). Returns the leaf; raises CertificateError."""
    chain = parse_chain(pem)
    _check_chain(chain, roots, now, "ManufacturerRootCertificate")
    return chain[0]


def verify_file_signature(certificate: x509.Certificate, path: Path, signature: str) -> None:
    """Check ``signature`` (base64) over the file at ``path`` with the certificate's key:
    RSA-PSS (the 1.6 security whitepaper's L01.FR.04; any salt length), RSA PKCS#1 v1.5 (what
    many manufacturers' tools make) or ECDSA (DER), over SHA-256 as L01.FR.04 asks. The file
    is hashed in chunks and verified as ``Prehashed`` (cryptography's API for a digest
    computed elsewhere). L01.FR.04's other scheme, EC-Schnorr, is not supported (the
    ``cryptography`` package has none). Raises CertificateError."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("the signature is not base64") from None
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 16):
            digest.update(chunk)
    prehashed = Prehashed(hashes.SHA256())
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            _verify_rsa(key, raw, digest.digest(), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, digest.digest(), ec.ECDSA(prehashed))
        else:
            raise CertificateError(f"{subject(certificate)}: unsupported key type")
    except InvalidSignature:
        raise CertificateError(f"the signature does not match the file (signed by "
                               f"{subject(certificate)})") from None


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, digest: bytes,
                prehashed: Prehashed) -> None:
    """RSA-PSS first, then PKCS#1 v1.5; raises InvalidSignature when neither matches."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    try:
        key.verify(signature, digest, pss, prehashed)
    except InvalidSignature:
        key.verify(signature, digest, padding.PKCS1v15(), prehashed)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_private_key() -> bytes:
    """A fresh EC P-256 key as unencrypted PKCS#8 PEM (it is kept in a 0600 file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def build_csr(key_pem: bytes, common_name: str, organization: str) -> str:
    """The PKCS#10 request for SignCertificate, PEM: CN = charge point id, O = CpoName."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    # A00.FR.512: ask for a certificate restricted to what it is for, a TLS client's
    # signatures (the CA decides what it issues).
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                          decipher_only=False)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name)
           .add_extension(usage, critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def expires_within(certificate: x509.Certificate, now: datetime, margin: timedelta) -> bool:
    return certificate.not_valid_after_utc - now <= margin
