"""Security profiles: which credentials each connection attempt uses, and how they change.

The OCPP 1.6 security extension's profiles, selected by the SecurityProfile key:

====  ===============================================  =========================
  0   no profile: the URL as configured, Basic auth     lab use; the agent's
      when a password is set, ``wss://`` with the       behaviour before profiles
      system's trust store
  1   Basic auth over ``ws://`` (only with              ``csms.allow_unencrypted``
      ``csms.allow_unencrypted = true``)
  2   TLS 1.2+ verified against the installed CSMS      Basic auth with the
      roots (host name always checked) + Basic auth     AuthorizationKey
  3   TLS with the charger's client certificate         no Basic auth
====  ===============================================  =========================

Changes (ChangeConfiguration SecurityProfile / AuthorizationKey) are tried before they are
kept: the new credentials become a *candidate*, the link reconnects with them, and only a
connection that succeeds commits them to ``state.json``. After :data:`FALLBACK_AFTER` failed
attempts the candidate is dropped, the previous credentials are used again and the fallback is
reported (log, security log, SecurityEventNotification). A profile may only be raised (TC_083,
TC_084; the same value again is Rejected too, whitepaper A05.FR.01); raising it needs what the
new profile needs (a CSMS root for 2, a client certificate for 3), else Rejected.

Under AdditionalRootCertificateCheck a replaced CSMS root stays as a fallback
(:meth:`CertificateStore.replace_csms_root`). Attempts verify the CSMS with the new root; one
that fails verification makes the next attempt use the fallback root (1.6 security whitepaper
M05.FR.13: "try to use the old Central System Root (fallback) certificate"), and the one after
the new root again. A connection verified with the new root removes the fallback (M05.FR.12);
one verified with the fallback keeps it.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import InvalidStatus

from agent.csms.link import basic_auth_header
from agent.security import events
from agent.security.keystore import CertificateStore, write_private
from agent.security.tls import NoTrustedRoot, client_context

log = logging.getLogger(__name__)

FALLBACK_AFTER = 2  # failed attempts with new credentials before going back to the old ones
KEY_LENGTH = (16, 40)  # AuthorizationKey set by the CSMS (TC_085_CS: at least 16 characters)

Report = Callable[[str, str], None]  # (security event type, techInfo)


@dataclass(frozen=True)
class Credentials:
    """What one connection uses. ``authorization_key`` is a secret: never logged."""

    profile: int
    authorization_key: str | None = None

    def __repr__(self) -> str:  # the key stays out of every log and traceback
        return f"Credentials(profile={self.profile}, authorization_key=***)"


class SecurityProfiles:
    """The active credentials, the candidate under trial, and the rules for changing them.

    ``state_file`` keeps what was committed (mode 0600: it holds the AuthorizationKey);
    ``seed`` is the configuration's, used when the file does not exist yet (or raises the
    profile above the stored one: the operator's file may raise it, never lower it).
    ``reconnect`` is set by the composition root to make the link reconnect.
    """

    def __init__(self, state_file: Path, store: CertificateStore, base_url: str,
                 charge_point_id: str, seed: Credentials, *, allow_unencrypted: bool,
                 report: Report) -> None:
        self._file = state_file
        self._store = store
        self._base_url = base_url
        self._charge_point_id = charge_point_id
        self._allow_unencrypted = allow_unencrypted
        self._report = report
        self.active = self._load(seed)
        self.candidate: Credentials | None = None
        self._failures = 0
        self._last_failure: str | None = None
        self.fallback: str | None = None  # the last fallback, for the status output
        self._old_root = False  # this attempt verifies the CSMS with the fallback CSMS root
        self.reconnect: Callable[[], None] = lambda: None

    def _load(self, seed: Credentials) -> Credentials:
        try:
            raw = json.loads(self._file.read_text())
            stored = Credentials(int(raw["profile"]), raw.get("authorization_key"))
        except FileNotFoundError:
            self._save(seed)
            return seed
        except (ValueError, KeyError, TypeError) as error:
            log.error("security: %s unreadable (%s); using the configured profile",
                      self._file, type(error).__name__)
            return seed
        if seed.profile > stored.profile:
            log.warning("security: the configuration raises SecurityProfile %d -> %d",
                        stored.profile, seed.profile)
            stored = replace(stored, profile=seed.profile)
            self._save(stored)
        return stored

    def _save(self, credentials: Credentials) -> None:
        write_private(self._file, json.dumps(asdict(credentials)).encode())

    @property
    def current(self) -> Credentials:
        """What the next connection attempt uses: the candidate while one is under trial."""
        return self.candidate or self.active

    # --- what the link asks for each attempt -------------------------------------------

    def endpoint(self) -> str:
        url = f"{self._base_url.rstrip('/')}/{self._charge_point_id}"
        scheme = {1: "ws", 2: "wss", 3: "wss"}.get(self.current.profile)
        if scheme is None:
            return url
        return urlunsplit(urlsplit(url)._replace(scheme=scheme))

    def connect_options(self) -> dict[str, Any]:
        """``ssl`` and ``additional_headers`` for ``websockets.connect``. Raises
        NoTrustedRoot (an OSError) for profile 2/3 without a CSMS root."""
        creds = self.current
        options: dict[str, Any] = {}
        if creds.profile in (0, 1, 2) and creds.authorization_key:
            options["additional_headers"] = basic_auth_header(self._charge_point_id,
                                                              creds.authorization_key)
        if creds.profile == 0:
            if self.endpoint().startswith("wss://"):
                options["ssl"] = ssl.create_default_context()
        elif creds.profile in (2, 3):
            self._old_root = self._old_root and self._store.fallback_root() is not None
            roots = self._store.csms_roots_pem(fallback=self._old_root)
            options["ssl"] = (client_context(roots) if creds.profile == 2 else client_context(
                roots, self._store.client_chain_path, self._store.client_key_path))
        return options

    def connected(self) -> None:
        self._failures, self._last_failure = 0, None
        self._settle_roots()
        if self.candidate is None:
            return
        before, self.active, self.candidate = self.active, self.candidate, None
        self._save(self.active)
        log.info("security: connected with SecurityProfile %d; kept", self.active.profile)
        what = (f"SecurityProfile {before.profile} -> {self.active.profile}"
                if before.profile != self.active.profile else "AuthorizationKey changed")
        self._report(events.RECONFIGURATION, what)

    def _settle_roots(self) -> None:
        """M05.FR.12: connected with the new CSMS root, the fallback goes; connected with the
        fallback, it stays and the next attempt tries the new root first again."""
        if self.current.profile in (2, 3) and not self._old_root:
            dropped = self._store.drop_fallback()
            if dropped is not None:
                from agent.security import certificates as certs  # a root is loaded: cheap

                info = (f"connected with the new CentralSystemRootCertificate; the fallback "
                        f"{certs.subject(dropped.certificate)} removed")
                log.info("security: %s", info)
                self._report(events.RECONFIGURATION, info)
        elif self._old_root:
            log.warning("security: connected with the fallback CentralSystemRootCertificate "
                        "only; it is kept")
        self._old_root = False

    def failed(self, error: BaseException) -> None:
        """One attempt failed: report what it says about security, and fall back once the
        candidate failed :data:`FALLBACK_AFTER` times."""
        kind, detail = classify(error)
        if kind is not None and kind != self._last_failure:
            self._report(kind, detail)
        self._last_failure = kind
        if (isinstance(error, ssl.SSLCertVerificationError)
                and self._store.fallback_root() is not None):
            self._old_root = not self._old_root  # M05.FR.13: the other root next time
            log.warning("security: the CSMS's certificate did not verify; the next attempt "
                        "uses the %s CSMS root", "fallback" if self._old_root else "new")
        if self.candidate is None:
            return
        self._failures += 1
        if self._failures < FALLBACK_AFTER:
            return
        tried, self.candidate, self._failures = self.candidate, None, 0
        what = (f"SecurityProfile {tried.profile}" if tried.profile != self.active.profile
                else "AuthorizationKey")
        self.fallback = (f"the new {what} failed ({detail}); back to the previous "
                         f"credentials, SecurityProfile {self.active.profile}")
        log.warning("security: %s", self.fallback)
        self._report(events.RECONFIGURATION, self.fallback)

    # --- ChangeConfiguration -------------------------------------------------------------

    def change_profile(self, text: str) -> str:
        """TC_083_CS / TC_084_CS: Accepted (and a reconnect) or Rejected, with the reason
        logged."""
        try:
            wanted = int(text.strip())
        except ValueError:
            return _rejected("SecurityProfile must be 0..3")
        now = self.current
        problem = self._cannot_use(wanted, now)
        if problem:
            return _rejected(problem)
        self._try(replace(now, profile=wanted))
        return "Accepted"

    def _cannot_use(self, wanted: int, now: Credentials) -> str | None:
        if not 0 <= wanted <= 3:
            return "SecurityProfile must be 0..3"
        if wanted < now.profile:
            return f"SecurityProfile {wanted} would lower security (now {now.profile})"
        if wanted == now.profile:  # A05.FR.01: "lower or equal to the current value"
            return f"SecurityProfile is {wanted} already"
        if wanted == 1 and not self._allow_unencrypted:
            return "SecurityProfile 1 needs csms.allow_unencrypted = true"
        if wanted in (1, 2) and len(now.authorization_key or "") < KEY_LENGTH[0]:
            # A05.FR.02: an AuthorizationKey "that meets the requirements" (16 or more)
            return f"SecurityProfile {wanted} needs an AuthorizationKey of {KEY_LENGTH[0]}+ " \
                "characters"
        if wanted >= 2 and not any(_valid_now(root.certificate)
                                   for root in self._store.roots("CentralSystemRootCertificate")):
            return f"SecurityProfile {wanted} needs a valid CentralSystemRootCertificate"
        chain = self._store.client_chain() if wanted == 3 else None
        if wanted == 3 and not (chain and _valid_now(chain[0])):
            return ("SecurityProfile 3 needs a valid charge point certificate "
                    "(SignCertificate first)")
        return None

    def change_key(self, text: str) -> str:
        """TC_073_CS: a new AuthorizationKey reconnects with it (profiles 0-2)."""
        if not KEY_LENGTH[0] <= len(text) <= KEY_LENGTH[1] or not text.isprintable():
            return _rejected(f"AuthorizationKey must be {KEY_LENGTH[0]}..{KEY_LENGTH[1]} "
                             "printable characters")
        new = replace(self.current, authorization_key=text)
        if new.profile == 3:  # not used on the wire: kept at once
            self.active, self.candidate = new, None
            self._save(new)
            self._report(events.RECONFIGURATION, "AuthorizationKey changed")  # A01.FR.11
        else:
            self._try(new)
        return "Accepted"

    def _try(self, credentials: Credentials) -> None:
        self.candidate, self._failures = credentials, 0
        log.info("security: reconnecting with SecurityProfile %d", credentials.profile)
        self.reconnect()


def _valid_now(certificate: Any) -> bool:
    """An x509.Certificate within its validity period (attributes only: no import of
    ``cryptography`` here)."""
    now = datetime.now(UTC)
    return bool(certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc)


def _rejected(reason: str) -> str:
    log.warning("security: ChangeConfiguration rejected: %s", reason)
    return "Rejected"


def classify(error: BaseException) -> tuple[str | None, str]:
    """The security event a failed connection attempt stands for, if any, and a techInfo."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return events.INVALID_CSMS_CERTIFICATE, str(error.verify_message)[:200]
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason or error)
        if "VERSION" in reason.upper():
            return events.INVALID_TLS_VERSION, reason
        if "CIPHER" in reason.upper():
            return events.INVALID_TLS_CIPHER_SUITE, reason
        if "ALERT_HANDSHAKE_FAILURE" in reason.upper():
            # The CSMS answered our ClientHello, which offers only the extension's suites,
            # with a handshake_failure alert: what an OpenSSL server sends when no suite is
            # shared (A00.FR.322). It can also mean no shared curve or signature algorithm.
            return events.INVALID_TLS_CIPHER_SUITE, f"{reason}: no cipher suite in common?"
        return None, reason
    if isinstance(error, InvalidStatus) and error.response.status_code in (401, 403):
        return events.FAILED_TO_AUTHENTICATE, f"HTTP {error.response.status_code}"
    if isinstance(error, NoTrustedRoot):
        return None, str(error)
    return None, type(error).__name__
