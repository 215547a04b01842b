"""Builds the security part of the agent from the configuration (used by agent.app)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from agent.config import Config
from agent.core import messages as msg
from agent.security.files import check_private_files
from agent.security.keystore import CSMS_ROOT, CertificateStore, InstallError
from agent.security.memory import measure
from agent.security.profile import Credentials, SecurityProfiles
from agent.security.service import Call, SecurityService
from agent.security_log import SecurityLog

log = logging.getLogger(__name__)


def open_security(config: Config, durable: Callable[[str, msg.OutboundReq], None], call: Call,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> SecurityService:
    """The certificate store under ``<state_dir>/security``, the profiles seeded from
    ``[csms]``, the security log; ``csms.ca_file`` is installed as CSMS root. Raises
    UnsafeKeyFile for a private file others could read, OSError when the state directory
    cannot be written."""
    directory = config.charger.state_dir / "security"
    check_private_files(directory)  # before anything reads them
    store = CertificateStore(directory)
    # Under AdditionalRootCertificateCheck the seed is only the first root: after a rotation
    # the old root in the file must not come back at every start (M05.FR.08).
    seed_roots = config.csms.ca_file is not None and not (
        config.csms.additional_root_certificate_check and store.roots(CSMS_ROOT))
    if seed_roots and config.csms.ca_file is not None:
        _install_seed_roots(store, config.csms.ca_file.read_text(), now())
    holder: list[SecurityService] = []
    profiles = SecurityProfiles(
        directory / "state.json", store, config.csms.url, config.charger.id,
        Credentials(config.csms.security_profile, config.csms.password),
        allow_unencrypted=config.csms.allow_unencrypted,
        report=lambda kind, info: holder[0].raise_event(kind, info))
    service = SecurityService(
        charge_point_id=config.charger.id, cpo_name=config.csms.cpo_name, directory=directory,
        store=store, profiles=profiles,
        security_log=SecurityLog(config.charger.state_dir,
                                 secrets=[s for s in (config.csms.password,) if s]),
        durable=durable, call=call, new_ref=lambda: str(uuid.uuid4()), now=now,
        additional_root_check=config.csms.additional_root_certificate_check,
        free=lambda: measure(config.charger.state_dir),
        clock_offset=lambda: time.time() - time.monotonic())
    holder.append(service)
    return service


def _install_seed_roots(store: CertificateStore, pem: str, now: datetime) -> None:
    from agent.security import certificates as certs  # cryptography: only with csms.ca_file

    for certificate in certs.parse_chain(pem):
        try:
            store.install_root(CSMS_ROOT, certs.to_pem([certificate]), now)
        except InstallError as error:
            log.error("csms.ca_file: %s not installed: %s", certs.subject(certificate), error)
