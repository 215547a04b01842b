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


def client_context(csms_roots_pem: str, client_cert: Path | None = None,
                   client_key: Path | None = None) -> ssl.SSLContext:
    """A context that trusts exactly ``csms_roots_pem`` and checks the host name; with
    ``client_cert`` and ``client_key`` it presents them (profile 3)."""
    if not csms_roots_pem.strip():
        raise NoTrustedRoot("no CentralSystemRootCertificate is installed")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(CIPHERS_TLS12)
    context.load_verify_locations(cadata=csms_roots_pem)
    if client_cert is not None and client_key is not None:
        context.load_cert_chain(client_cert, client_key)
    return context
