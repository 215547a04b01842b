"""The TLS client context for security profiles 2 and 3.

OCPP 1.6 security extension, profile 2/3 (and TC_086_CS/TC_087_CS): TLS 1.2 or later, the
server's certificate verified against the installed CentralSystemRootCertificates (never the
system's trust store: a public CA must not be able to impersonate the CSMS), the host name
always checked, and for TLS 1.2 only the extension's cipher suites. Profile 3 adds the
charger's client certificate.

Python's ``ssl`` (OpenSSL) is the implementation; ``set_ciphers`` governs TLS 1.2 and below
only, TLS 1.3 suites are all AEAD and left as OpenSSL has them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

# TLS 1.2 suites of the security extension (TC_086_CS): ECDHE-ECDSA with AES-GCM for EC server
# keys, RSA with AES-GCM for RSA server keys; ECDHE-RSA with AES-GCM is added as the forward
# secret form of the RSA suites (what RSA-keyed CSMSs negotiate in practice).
CIPHERS_TLS12 = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
))


class NoTrustedRoot(ConnectionError):
    """Profile 2/3 without an installed CentralSystemRootCertificate: nothing to verify the
    CSMS against, so no connection is attempted (an OSError: the link retries later)."""


def file_server_context(roots_pem: str) -> ssl.SSLContext:
    """The context of firmware downloads and diagnostics uploads over https: the system's
    trust store plus ``roots_pem`` (the installed CentralSystemRootCertificates and
    ManufacturerRootCertificates), TLS 1.2 or later, the host name checked.

    Unlike the CSMS link, the file server may be anywhere the CSMS points (a CDN or object
    store with a public CA's certificate, the operator's or the manufacturer's own server), so
    the system's store stays; the installed roots add the operator's and the manufacturer's
    own CAs. A package's integrity does not rest on this alone: the package carries its
    checksum and, for SignedUpdateFirmware, a signature checked against the manufacturer
    roots only (docs/updates.md)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # CERT_REQUIRED, hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if roots_pem.strip():
        context.load_verify_locations(cadata=roots_pem)
    return context


def client_context(csms_roots_pem: str, client_cert: Path | None = None,
                   client_key: Path | None = None) -> ssl.SSLContext:
    """A context that trusts exactly ``csms_roots_pem`` and checks the host name; with
    ``client_cert`` and ``client_key`` it presents them (profile 3).

    Every certificate of ``csms_roots_pem`` is a trust anchor, self-signed or not
    (``VERIFY_X509_PARTIAL_CHAIN``): under AdditionalRootCertificateCheck the installed root
    is the CSMS's new root signed by its old one, and the 1.6 security whitepaper says the
    handshake then needs "a partial certificate chain verification", else it fails once the
    old root is gone. For self-signed roots the flag changes nothing."""
    if not csms_roots_pem.strip():
        raise NoTrustedRoot("no CentralSystemRootCertificate is installed")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(CIPHERS_TLS12)
    context.load_verify_locations(cadata=csms_roots_pem)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if client_cert is not None and client_key is not None:
        context.load_cert_chain(client_cert, client_key)
    return context
