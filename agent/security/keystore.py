"""The charger's certificate store: trusted roots, its own key pair and certificate, on disk.

Layout under ``<state_dir>/security`` (directory 0700, every file 0600, written atomically):

* ``CentralSystemRootCertificate/<sha256>.pem`` and ``ManufacturerRootCertificate/<sha256>.pem``:
  the installed roots, one per file, named by the SHA-256 of their DER form;
* ``csms-fallback``: under AdditionalRootCertificateCheck, the file name of the previous
  CSMS root kept as the fallback until a connection with its replacement succeeds (its PEM
  stays in ``CentralSystemRootCertificate/``);
* ``client.key`` and ``client.pem``: the key pair generated on the charger (it never leaves
  it) and the chain the CSMS signed for it (security profile 3);
* ``pending.key``: the key of a SignCertificate whose CertificateSigned has not come yet;
  it replaces ``client.key`` only once its chain has been validated.

The files are the truth: nothing is cached, so a root installed by one call is trusted by the
next TLS handshake. Raises OSError for a store that cannot be written, CertificateError for a
certificate that is not fit (see :mod:`agent.security.certificates`).

``cryptography`` (about 8 MB) is imported by the first method that reads or makes a
certificate or a key, not with this module: a charger without certificates never loads it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography (~8 MB) is loaded by the first method that reads a certificate
    from cryptography import x509

    from agent.security import certificates as certs

CSMS_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
ROOT_TYPES = (CSMS_ROOT, MANUFACTURER_ROOT)
STORE_MAX_LENGTH = 20  # CertificateStoreMaxLength: roots of both types together
PRIVATE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600 from the
    first byte: the file is created with that mode, never chmod-ed after)."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # an older temp file may have had another mode
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


@dataclass(frozen=True)
class InstalledRoot:
    use: str  # CSMS_ROOT or MANUFACTURER_ROOT
    path: Path
    certificate: x509.Certificate

    @property
    def hash_data(self) -> certs.HashData:
        from agent.security import certificates as certs

        return certs.hash_data(self.certificate)


class InstallError(ValueError):
    """InstallCertificate cannot keep the certificate; ``status`` is the OCPP answer
    (Rejected: the certificate is not fit, or the store is full: :class:`StoreFull`)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class StoreFull(InstallError):
    """CertificateStoreMaxLength roots are installed: Rejected (whitepaper M05.FR.03), and
    no sign that the certificate itself is bad."""

    def __init__(self) -> None:
        super().__init__("Rejected", f"the store holds {STORE_MAX_LENGTH} roots already")


class CertificateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        for use in ROOT_TYPES:
            (directory / use).mkdir(mode=0o700, exist_ok=True)

    # --- roots ---------------------------------------------------------------------------

    def roots(self, use: str | None = None) -> list[InstalledRoot]:
        files = [(kind, path) for kind in ((use,) if use else ROOT_TYPES)
                 for path in sorted((self.directory / kind).glob("*.pem"))]
        if not files:
            return []  # and cryptography stays unloaded
        from agent.security import certificates as certs

        return [InstalledRoot(kind, path, certificate) for kind, path in files
                for certificate in certs.parse_chain(path.read_text())]

    def csms_roots_pem(self, fallback: bool = False) -> str:
        """The CSMS roots a connection trusts: the current ones, or with ``fallback`` the
        fallback root only (1.6 security whitepaper M05.FR.13); "" when there is none."""
        roots = ([kept] if (kept := self.fallback_root()) else []) if fallback else (
            self.current_csms_roots())
        return _pem(roots)

    def current_csms_roots(self) -> list[InstalledRoot]:
        kept = self.fallback_root()
        return [root for root in self.roots(CSMS_ROOT)
                if kept is None or root.path != kept.path]

    def fallback_root(self) -> InstalledRoot | None:
        """The CSMS root kept as a fallback for its replacement (AdditionalRootCertificateCheck),
        if any; a fallback that is the only CSMS root left is simply the root."""
        try:
            name = self._fallback_mark.read_text().strip()
        except FileNotFoundError:
            return None
        csms = self.roots(CSMS_ROOT)
        kept = [root for root in csms if root.path.name == name]
        return kept[0] if kept and len(csms) > 1 else None

    @property
    def _fallback_mark(self) -> Path:
        return self.directory / "csms-fallback"

    def replace_csms_root(self, pem: str, now: datetime) -> InstalledRoot:
        """InstallCertificate(CentralSystemRootCertificate) under AdditionalRootCertificateCheck
        (1.6 security whitepaper M05.FR.08-11): the new root must be signed by the current
        one, which it replaces; the current one stays as the only fallback (an older fallback
        goes). The first CSMS root is installed as usual. Raises InstallError (Rejected: not
        fit or not signed by the current root)."""
        current = self.current_csms_roots()
        if not current:
            return self.install_root(CSMS_ROOT, pem, now)
        from agent.security import certificates as certs

        try:
            new, signer = certs.check_replacement_root(
                pem, [root.certificate for root in current], now)
        except certs.CertificateError as error:
            raise InstallError("Rejected", str(error)) from None
        path = self._root_path(CSMS_ROOT, new)
        if path.exists():
            return InstalledRoot(CSMS_ROOT, path, new)
        old = next(root for root in current if root.certificate == signer)
        others = [root for root in self.roots(CSMS_ROOT) if root.path != old.path]
        if len(self.roots()) - len(others) >= STORE_MAX_LENGTH:
            raise StoreFull
        write_private(path, certs.to_pem([new]).encode())
        write_private(self._fallback_mark, old.path.name.encode())
        for root in others:  # one root plus one fallback (M05.FR.08)
            root.path.unlink()
        return InstalledRoot(CSMS_ROOT, path, new)

    def drop_fallback(self) -> InstalledRoot | None:
        """A connection verified with the new CSMS root succeeded: the fallback goes
        (M05.FR.12). Returns the root removed, if any."""
        kept = self.fallback_root()
        if kept is not None:
            kept.path.unlink()
        self._fallback_mark.unlink(missing_ok=True)
        return kept

    def roots_pem(self, use: str | None = None) -> str:
        """The installed roots of ``use`` (default: both types), as one PEM text."""
        return _pem(self.roots(use))

    def install_root(self, use: str, pem: str, now: datetime) -> InstalledRoot:
        """Check and keep a root (InstallCertificate); installing one already there is a
        no-op. Raises InstallError."""
        from agent.security import certificates as certs

        try:
            root = certs.check_root(pem, now)
        except certs.CertificateError as error:
            raise InstallError("Rejected", str(error)) from None
        path = self._root_path(use, root)
        if not path.exists():
            if len(self.roots()) >= STORE_MAX_LENGTH:
                raise StoreFull
            write_private(path, certs.to_pem([root]).encode())
        return InstalledRoot(use, path, root)

    def _root_path(self, use: str, root: x509.Certificate) -> Path:
        from agent.security import certificates as certs

        return self.directory / use / f"{hashlib.sha256(certs.to_der(root)).hexdigest()}.pem"

    def find(self, wanted: certs.HashData) -> InstalledRoot | None:
        from agent.security import certificates as certs

        algorithm = wanted.hash_algorithm.upper()
        if algorithm not in certs.HASH_ALGORITHMS:
            return None
        for root in self.roots():
            found = certs.hash_data(root.certificate, algorithm=algorithm)
            if certs.same_certificate(found, wanted):
                return root
        return None

    def delete_root(self, root: InstalledRoot) -> None:
        if root == self.fallback_root():
            self._fallback_mark.unlink(missing_ok=True)
        root.path.unlink()

    # --- the charger's own key and certificate ------------------------------------------

    @property
    def client_key_path(self) -> Path:
        return self.directory / "client.key"

    @property
    def client_chain_path(self) -> Path:
        return self.directory / "client.pem"

    @property
    def pending_key_path(self) -> Path:
        return self.directory / "pending.key"

    def new_pending_key(self) -> bytes:
        """Generate the key pair for a CSR, on the charger; kept until its certificate
        comes (a second CSR replaces it)."""
        from agent.security import certificates as certs

        key = certs.new_private_key()
        write_private(self.pending_key_path, key)
        return key

    def pending_key(self) -> bytes | None:
        path = self.pending_key_path
        return path.read_bytes() if path.exists() else None

    def client_chain(self) -> list[x509.Certificate] | None:
        path = self.client_chain_path
        if not (path.exists() and self.client_key_path.exists()):
            return None
        from agent.security import certificates as certs

        return certs.parse_chain(path.read_text())

    @property
    def _next_chain_path(self) -> Path:
        return self.directory / "next.pem"

    @property
    def _next_key_path(self) -> Path:
        return self.directory / "next.key"

    def has_next_chain(self) -> bool:
        """A chain is held for later (cheap: no certificate is read)."""
        return self._next_chain_path.exists() and self._next_key_path.exists()

    def next_chain(self) -> list[x509.Certificate] | None:
        """An accepted chain whose leaf is not valid yet (held until then), if any."""
        if not self.has_next_chain():
            return None
        from agent.security import certificates as certs  # only with a certificate held

        return certs.parse_chain(self._next_chain_path.read_text())

    def accept_client_chain(self, pem: str, now: datetime) -> list[x509.Certificate]:
        """Validate a CertificateSigned chain against the pending key and the CSMS roots and
        take both into use, or, when the leaf is valid only from a later moment, hold them
        until then (:meth:`switch_when_due`, A02.FR.08). Raises CertificateError (the old
        certificate stays)."""
        from agent.security import certificates as certs

        key = self.pending_key()
        if key is None:
            raise certs.CertificateError("no certificate was requested (no pending key)")
        roots = [root.certificate for root in self.roots(CSMS_ROOT)]
        chain = certs.check_client_chain(pem, roots, key, now)
        write_private(self._next_chain_path, certs.to_pem(chain).encode())
        os.replace(self.pending_key_path, self._next_key_path)
        self.switch_when_due(now)
        return chain

    def switch_when_due(self, now: datetime) -> bool:
        """Take the held chain into use once its leaf is valid; True when it was."""
        held = self.next_chain()
        if held is None or now < held[0].not_valid_before_utc:
            return False
        os.replace(self._next_chain_path, self.client_chain_path)
        os.replace(self._next_key_path, self.client_key_path)
        return True


def _pem(roots: list[InstalledRoot]) -> str:
    """``roots`` as one PEM text; "" for none (and cryptography stays unloaded)."""
    if not roots:
        return ""
    from agent.security import certificates as certs

    return certs.to_pem([root.certificate for root in roots])
