"""The security extension's commands, keys and events, between the CSMS session and the core.

:meth:`SecurityService.commands` wraps the core's command handler: the certificate messages
(InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, CertificateSigned,
ExtendedTriggerMessage) and the security keys of Get/ChangeConfiguration (SecurityProfile,
AuthorizationKey, CpoName and the read-only ones) are answered here, because they need the
certificate store and the link; everything else goes to the core unchanged.

What a command makes happen on the wire (a reconnect, a SignCertificate) waits for
:meth:`SecurityService.replied`, i.e. until the answer to the CSMS is out.

Security events (:meth:`SecurityService.raise_event`) go to the local security log and, as
SecurityEventNotification, into the outbox's journal: durable, in order, after registration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core import messages as msg
from agent.csms.errors import CallRejected, LinkLost
from agent.security import events
from agent.security.keystore import (
    CSMS_ROOT,
    ROOT_TYPES,
    STORE_MAX_LENGTH,
    CertificateStore,
    InstallError,
    StoreFull,
    write_private,
)
from agent.security.memory import Free, MemoryWatch
from agent.security.profile import SecurityProfiles
from agent.security_log import SecurityLog

if TYPE_CHECKING:  # cryptography: imported where a certificate is at hand (keystore.py)
    from cryptography import x509

log = logging.getLogger(__name__)

CHAIN_MAX_SIZE = 10_000  # CertificateSignedMaxChainSize (characters of the PEM chain)
RENEW_AHEAD = timedelta(days=30)  # the client certificate is renewed this long before expiry
CHECK_EVERY = 12 * 3600.0  # seconds between expiry checks
MEMORY_CHECK_EVERY = 60.0  # seconds between looks at free disk and RAM, the clock, and a
# held charge point certificate that became valid
# SettingSystemTime: the wall clock moved this far against the monotonic clock between two
# looks. NTP slews (at most 0.5 ms/s, 30 ms between looks) stay below it; a step, such as the
# first synchronisation of a Pi without a real-time clock, or a date set by hand, does not.
CLOCK_STEP_S = 2.0
# InvalidMessages: at most one event per window, so a misbehaving CSMS cannot flood the
# security log and the outbox; the next event says how many were left out.
INVALID_MESSAGES_EVERY = timedelta(minutes=10)
# ExtendedTriggerMessage FirmwareStatusNotification asks for the signed form of the status
# (SignedFirmwareStatusNotification, with the requestId); LogStatusNotification for GetLog's.
# agent.maintenance answers both under these names.
EXTENDED_TRIGGERS = {"FirmwareStatusNotification": "SignedFirmwareStatusNotification"}
TRIGGERS_FOR_CORE = ("BootNotification", "SignedFirmwareStatusNotification", "Heartbeat",
                     "MeterValues", "StatusNotification", "LogStatusNotification")

Request = msg.AnyCsmsRequest
Response = msg.AnyCsmsResponse
Handler = Callable[[Request], Response | Awaitable[Response]]
CoreHandler = Handler  # the runtime: the core and the services it asks (agent.maintenance)
Call = Callable[[str, msg.OutboundReq], Awaitable[msg.InboundConf]]


class SecurityService:
    """``durable`` queues a message in the outbox (journaled); ``call`` makes one call at
    once; ``new_ref`` makes message ids; ``now`` is the UTC clock."""

    def __init__(self, *, charge_point_id: str, cpo_name: str | None, directory: Path,
                 store: CertificateStore, profiles: SecurityProfiles, security_log: SecurityLog,
                 durable: Callable[[str, msg.OutboundReq], None], call: Call,
                 new_ref: Callable[[], str], now: Callable[[], datetime],
                 additional_root_check: bool = False,
                 free: Callable[[], Free] | None = None,
                 clock_offset: Callable[[], float] | None = None) -> None:
        self._charge_point_id = charge_point_id
        self.additional_root_check = additional_root_check  # AdditionalRootCertificateCheck
        self._cpo_file = directory / "cpo_name"
        self._cpo_seed = cpo_name
        self.store = store
        self.profiles = profiles
        self.log = security_log
        self._durable = durable
        self._call = call
        self._new_ref = new_ref
        self._now = now
        self._after_reply: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._free = free
        self._memory = MemoryWatch()
        self._clock_offset = clock_offset  # wall clock minus monotonic clock, seconds
        self._last_offset = clock_offset() if clock_offset is not None else None
        self._tampered = False
        self._invalid_at: datetime | None = None  # the last InvalidMessages event
        self._invalid_left_out = 0
        self.reconnect: Callable[[], None] = lambda: None
        profiles.reconnect = lambda: self._after_reply.append(self.reconnect)

    # --- the command handler -------------------------------------------------------------

    def commands(self, core: CoreHandler) -> Handler:
        def handle(request: Request) -> Response | Awaitable[Response]:
            match request:
                case msg.CsmsGetConfiguration():
                    return self._get_configuration(request, core)
                case msg.CsmsChangeConfiguration(key=key, value=value) if _security_key(key):
                    return msg.ChangeConfigurationResult(self._change(_security_key(key), value))
                case msg.CsmsReset():
                    return self._reset(request, core)
                case msg.CsmsExtendedTriggerMessage():
                    return msg.StatusResult(self._extended_trigger(request, core))
                case msg.CsmsInstallCertificate(use=use, certificate=pem):
                    return msg.StatusResult(self._install(use, pem))
                case msg.CsmsDeleteCertificate(hash_data=wanted):
                    return msg.StatusResult(self._delete(wanted))
                case msg.CsmsGetInstalledCertificateIds(use=use):
                    return self._installed(use)
                case msg.CsmsCertificateSigned(chain=chain):
                    return msg.StatusResult(self._certificate_signed(chain))
            assert not isinstance(request, msg.SecurityRequest)
            return core(request)

        return handle

    def replied(self) -> None:
        """The answer to a CSMS call is out: do what it promised."""
        actions, self._after_reply = self._after_reply, []
        for action in actions:
            action()

    # --- configuration keys --------------------------------------------------------------

    @property
    def cpo_name(self) -> str | None:
        try:
            return self._cpo_file.read_text().strip() or None
        except FileNotFoundError:
            return self._cpo_seed

    def entries(self) -> list[msg.ConfigurationEntry]:
        """The security keys as GetConfiguration reports them; AuthorizationKey is
        write-only (its value is never returned)."""
        return [
            msg.ConfigurationEntry("AdditionalRootCertificateCheck",
                                   str(self.additional_root_check).lower(), True),
            msg.ConfigurationEntry("AuthorizationKey", None, False),
            msg.ConfigurationEntry("CertificateSignedMaxChainSize", str(CHAIN_MAX_SIZE), True),
            msg.ConfigurationEntry("CertificateStoreMaxLength", str(STORE_MAX_LENGTH), True),
            msg.ConfigurationEntry("CpoName", self.cpo_name or "", False),
            msg.ConfigurationEntry("SecurityProfile", str(self.profiles.current.profile), False),
        ]

    def _get_configuration(self, request: msg.CsmsGetConfiguration,
                           core: CoreHandler) -> msg.GetConfigurationResult:
        answer = core(request)
        assert isinstance(answer, msg.GetConfigurationResult)
        ours = {entry.key: entry for entry in self.entries()}
        if not request.keys:
            return msg.GetConfigurationResult(answer.entries + tuple(ours.values()))
        found = [ours[name] for key in answer.unknown_keys if (name := _security_key(key))]
        unknown = tuple(key for key in answer.unknown_keys if not _security_key(key))
        return msg.GetConfigurationResult(answer.entries + tuple(found), unknown)

    def _change(self, key: str, value: str) -> str:
        if key == "SecurityProfile":
            return self.profiles.change_profile(value)
        if key == "AuthorizationKey":
            return self.profiles.change_key(value)
        if key == "CpoName":
            if not 1 <= len(value) <= 64:  # the X.509 limit of an organizationName
                return "Rejected"
            write_private(self._cpo_file, value.encode())
            self.raise_event(events.RECONFIGURATION, "CpoName changed")
            return "Accepted"
        return "Rejected"  # the read-only ones

    def _reset(self, request: msg.CsmsReset, core: CoreHandler) -> Response | Awaitable[Response]:
        answer = core(request)
        if isinstance(answer, msg.CommandResult) and answer.status.value == "Accepted":
            self.raise_event(events.RESET_OR_REBOOT, f"{'Hard' if request.hard else 'Soft'} "
                             "reset requested by the Central System")
        return answer

    # --- certificates --------------------------------------------------------------------

    def _install(self, use: str, pem: str) -> str:
        try:
            if use == CSMS_ROOT and self.additional_root_check:  # M05.FR.08-11
                root = self.store.replace_csms_root(pem, self._now())
            else:
                root = self.store.install_root(use, pem, self._now())
        except InstallError as error:
            log.warning("security: InstallCertificate %s %s: %s", use, error.status, error)
            if use == CSMS_ROOT and not isinstance(error, StoreFull):
                self.raise_event(events.INVALID_CSMS_CERTIFICATE, str(error))  # TC_078_CS
            return error.status
        except OSError as error:
            log.error("security: cannot keep the certificate: %s", error)
            return "Failed"
        log.info("security: installed %s %s", use, _subject(root.certificate))
        return "Accepted"

    def _delete(self, wanted: msg.CertificateHashData) -> str:
        root = self.store.find(wanted)
        if root is None:
            return "NotFound"
        if root.use == CSMS_ROOT and len(self.store.roots(CSMS_ROOT)) == 1:
            log.warning("security: refusing to delete the last CentralSystemRootCertificate")
            return "Failed"
        try:
            self.store.delete_root(root)
        except OSError as error:  # M04.FR.03
            log.error("security: cannot delete %s: %s", _subject(root.certificate), error)
            return "Failed"
        log.info("security: deleted %s %s", root.use, _subject(root.certificate))
        return "Accepted"

    def _installed(self, use: str) -> msg.InstalledCertificatesResult:
        found = tuple(root.hash_data for root in self.store.roots(use) if use in ROOT_TYPES)
        return msg.InstalledCertificatesResult("Accepted" if found else "NotFound", found)

    def _certificate_signed(self, chain: str) -> str:
        from agent.security import certificates as certs

        if len(chain) > CHAIN_MAX_SIZE:
            self.raise_event(events.INVALID_CHARGE_POINT_CERTIFICATE, "chain too long")
            return "Rejected"
        try:
            accepted = self.store.accept_client_chain(chain, self._now())
        except certs.CertificateError as error:
            log.warning("security: CertificateSigned rejected: %s", error)
            self.raise_event(events.INVALID_CHARGE_POINT_CERTIFICATE, str(error))  # TC_077_CS
            return "Rejected"
        leaf = accepted[0]
        if self.store.next_chain() is not None:  # A02.FR.08: valid only from a later moment
            start = leaf.not_valid_before_utc
            log.info("security: new charge point certificate %s held until it is valid, %s",
                     certs.subject(leaf), start.isoformat())
            return "Accepted"  # the minute loop takes it into use then
        log.info("security: new charge point certificate %s, valid until %s",
                 certs.subject(leaf), certs.not_after(leaf).isoformat())
        if self.profiles.current.profile == 3:  # TC_074_CS: reconnect with the new one
            self._after_reply.append(self.reconnect)
        return "Accepted"

    def switch_due_certificate(self) -> None:
        """A held charge point certificate whose validity has begun is taken into use (with
        a reconnect under profile 3): A02.FR.08 "as soon as" its "not before" has passed."""
        if self.store.switch_when_due(self._now()):
            log.info("security: the held charge point certificate is valid now; in use")
            if self.profiles.current.profile == 3:
                self.reconnect()

    def _extended_trigger(self, request: msg.CsmsExtendedTriggerMessage,
                          core: CoreHandler) -> str:
        if request.message == "SignChargePointCertificate":
            if not self.cpo_name:
                log.warning("security: cannot sign a certificate without a CpoName")
                return "Rejected"
            self._after_reply.append(lambda: self._spawn(self.request_certificate()))
            return "Accepted"
        message = EXTENDED_TRIGGERS.get(request.message, request.message)
        if message in TRIGGERS_FOR_CORE:
            answer = core(msg.CsmsTriggerMessage(message, request.connector_id))
            assert isinstance(answer, msg.StatusResult)
            return answer.status
        return "NotImplemented"

    async def request_certificate(self) -> bool:
        """SignCertificate with a CSR for a key made now, on the charger; True when the
        CSMS accepted it (its CertificateSigned comes later)."""
        cpo = self.cpo_name
        if not cpo:
            return False
        from agent.security import certificates as certs

        key = self.store.new_pending_key()
        csr = certs.build_csr(key, self._charge_point_id, cpo)
        try:
            conf = await self._call(self._new_ref(), msg.CertificateSigningRequest(csr))
        except (LinkLost, CallRejected, TimeoutError) as error:
            log.warning("security: SignCertificate failed: %s", error)
            return False
        accepted = isinstance(conf, msg.CertificateSigningResult) and conf.accepted
        log.info("security: SignCertificate %s", "accepted" if accepted else "rejected")
        return accepted

    # --- events and expiry ---------------------------------------------------------------

    def raise_event(self, kind: str, info: str | None = None) -> None:
        moment = self._now()
        try:
            record = self.log.append(moment, kind, kind in events.CRITICAL, info)
        except OSError as error:
            log.error("security log: cannot write: %s", error)
            text = info
        else:
            text = record.info
        log.warning("security event %s%s", kind, f": {text}" if text else "")
        self._durable(self._new_ref(), msg.SecurityEventRaised(kind, moment, text))

    def check_expiry(self) -> None:
        """Warn about roots that expire soon; renew the client certificate ahead of time."""
        roots, chain = self.store.roots(), self.store.client_chain()
        if not roots and not chain and not self.store.has_next_chain():
            return  # nothing expires (and cryptography stays unloaded)
        from agent.security import certificates as certs

        now = self._now()
        for root in roots:
            if certs.expires_within(root.certificate, now, RENEW_AHEAD):
                log.warning("security: %s %s expires on %s", root.use,
                            certs.subject(root.certificate),
                            certs.not_after(root.certificate).isoformat())
        self.switch_due_certificate()  # also at start, for one held across a restart
        chain = self.store.client_chain()
        if (chain and certs.expires_within(chain[0], now, RENEW_AHEAD)
                and self.store.next_chain() is None):  # not while a successor is held
            log.warning("security: the charge point certificate expires on %s; renewing",
                        certs.not_after(chain[0]).isoformat())
            self._spawn(self.request_certificate())

    def tamper(self, opened: bool) -> None:
        """The enclosure's tamper switch changed (on the loop): an opening is the critical
        event TamperDetectionActivated; the closing is only logged."""
        if opened and not self._tampered:
            self.raise_event(events.TAMPER, "tamper switch: enclosure opened")
        elif not opened and self._tampered:
            log.warning("security: tamper switch: enclosure closed again")
        self._tampered = opened

    def invalid_message(self, code: str, action: str | None) -> None:
        """The link refused a frame that is not a valid OCPP message (a CALLERROR went back):
        InvalidMessages, at most once per :data:`INVALID_MESSAGES_EVERY`. The techInfo names
        the error code and the action, never the payload (it could carry anything)."""
        now = self._now()
        last = self._invalid_at
        if last is not None and timedelta(0) <= now - last < INVALID_MESSAGES_EVERY:
            self._invalid_left_out += 1
            return
        what = f"{code} answered to {action or 'a frame'}"
        if self._invalid_left_out:
            what += f"; {self._invalid_left_out} more since {last:%Y-%m-%dT%H:%M:%SZ}"
        self._invalid_at, self._invalid_left_out = now, 0
        self.raise_event(events.INVALID_MESSAGES, what)

    def check_memory(self) -> None:
        """MemoryExhaustion when the disk under state_dir or RAM is getting full."""
        if self._free is None:
            return
        try:
            shortage = self._memory.check(self._free())
        except OSError as error:
            log.warning("security: cannot measure free memory: %s", error)
            return
        if shortage is not None:
            self.raise_event(events.MEMORY_EXHAUSTION, f"getting full: {shortage}")

    def check_clock(self) -> None:
        """SettingSystemTime when the system time was set since the last look (the agent
        never sets it; NTP or an operator does)."""
        if self._clock_offset is None or self._last_offset is None:
            return
        offset = self._clock_offset()
        step, self._last_offset = offset - self._last_offset, offset
        if abs(step) >= CLOCK_STEP_S:
            self.raise_event(events.SETTING_SYSTEM_TIME,
                             f"the system time was set {step:+.0f} s")

    async def run(self) -> None:
        """Periodic expiry, memory, clock and held-certificate checks, for as long as the
        agent runs."""
        await asyncio.gather(self._expiry_checks(), self._minute_checks())

    async def _expiry_checks(self) -> None:
        while True:
            self.check_expiry()
            await asyncio.sleep(CHECK_EVERY)

    async def _minute_checks(self) -> None:
        while True:
            self.check_memory()
            self.check_clock()
            self.switch_due_certificate()
            await asyncio.sleep(MEMORY_CHECK_EVERY)

    def status(self) -> dict[str, Any]:
        chain = self.store.client_chain()
        return {
            "profile": self.profiles.current.profile,
            "fallback": self.profiles.fallback,
            "csms_roots": len(self.store.roots(CSMS_ROOT)),
            "client_certificate_expires": _not_after(chain[0]) if chain else None,
        }

    def _spawn(self, coro: Any) -> None:
        if not inspect.iscoroutine(coro):
            return
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _subject(certificate: x509.Certificate) -> str:
    from agent.security import certificates as certs  # loaded: a certificate exists

    return certs.subject(certificate)


def _not_after(certificate: x509.Certificate) -> str:
    from agent.security import certificates as certs  # loaded: a certificate exists

    return certs.not_after(certificate).isoformat()


_KEYS = ("AdditionalRootCertificateCheck", "AuthorizationKey", "CertificateSignedMaxChainSize",
         "CertificateStoreMaxLength", "CpoName", "SecurityProfile")


def _security_key(key: str) -> str:
    """The security key ``key`` names (keys are case-insensitive), or ""."""
    return next((name for name in _KEYS if name.lower() == key.lower()), "")
