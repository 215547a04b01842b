"""Security profiles 1-3 and certificate management against a real TLS CSMS on loopback.

The CSMS is the strict loopback peer (every frame schema-checked) behind a real TLS server
whose certificates come from a CA each test makes (tests/pki.py). OCTT security cases are
named by id (TC_073_CS onwards in ../shared/reference/ocpp16-conformance.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ocpp.v16 import call

from agent.app import Agent
from agent.config import parse_config
from evsim.site import CHARGER_ID, SimSite
from tests.pki import TestCa, server_context

from .conformance.helpers import booted, change
from .test_link import until

KEY = "0123456789abcdef-key"  # AuthorizationKey the CSMS knows
CPO = "Test CPO"
pytestmark = pytest.mark.slow


def security_log(site: SimSite) -> list[dict[str, Any]]:
    path = site.workdir / "state" / "security-log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def serve_tls(site: SimSite, context: Any, password: str | None = KEY) -> None:
    """Restart the CSMS on its port with ``context`` (None: plain ws)."""
    await site.csms.go_down()
    site.csms.ssl_context = context
    site.csms.password = password
    await site.csms.come_back()


@pytest.fixture
async def launch(site: SimSite) -> AsyncIterator[Callable[..., Any]]:
    started: list[Agent] = []

    async def start(**csms: object) -> Agent:
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in csms.items())
        text = site.agent_config().replace("[csms]\n", f"[csms]\n{lines}", 1)
        agent = Agent(parse_config(text, "site"), drain_seconds=2.0)
        await agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if not agent.stopped.is_set():  # a test may have stopped one to restart it
            await agent.stop()
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


def ca_file(tmp_path: Path, ca: TestCa) -> str:
    path = tmp_path / f"root-{ca.certificate.serial_number:x}.pem"
    path.write_text(ca.root_pem)
    return str(path)


def hash_of(root: TestCa) -> dict[str, str]:
    """CertificateHashData computed here, independently of the agent (EC key: the key's bit
    string is its X9.62 point)."""
    certificate = root.certificate
    key_bits = certificate.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"hash_algorithm": "SHA256",
            "issuer_name_hash": hashlib.sha256(certificate.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": hashlib.sha256(key_bits).hexdigest(),
            "serial_number": format(certificate.serial_number, "x")}


# --- profile 2: TLS with server verification ----------------------------------------------


async def test_tc_086_profile_2_tls_with_basic_auth(site: SimSite, tmp_path: Path,
                                                    launch: Any) -> None:
    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server"))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca))
    await booted(site)
    version, cipher = site.csms.tls_sessions[-1]  # type: ignore[misc]
    assert version in ("TLSv1.2", "TLSv1.3")
    assert "GCM" in cipher or version == "TLSv1.3"
    assert site.csms.authorizations_seen[-1] and "Basic" in site.csms.authorizations_seen[-1]
    # StartupOfTheDevice, journaled and delivered once registered.
    await site.csms.wait_for(lambda: any(kind == "StartupOfTheDevice"
                                         for kind, _ in site.csms.security_events))


@pytest.mark.parametrize("bad", ["wrong host", "expired", "unknown CA"])
async def test_a_bad_server_certificate_is_refused_and_reported(
        site: SimSite, tmp_path: Path, launch: Any, bad: str) -> None:
    ca = TestCa()
    context = {
        "wrong host": lambda: server_context(ca, tmp_path / "s", hosts=("csms.example",)),
        "expired": lambda: server_context(ca, tmp_path / "s", expired=True),
        "unknown CA": lambda: server_context(TestCa("Someone Else"), tmp_path / "s"),
    }[bad]()
    await serve_tls(site, context)
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca))
    await until(lambda: any(r["type"] == "InvalidCentralSystemCertificate"
                            for r in security_log(site)))
    assert site.csms.connections == 0  # no session over an unverified server
    # The event is durable: once the CSMS shows a good certificate it is delivered.
    await serve_tls(site, server_context(ca, tmp_path / "good"))
    await booted(site)
    await site.csms.wait_for(lambda: any(kind == "InvalidCentralSystemCertificate"
                                         for kind, _ in site.csms.security_events))


# --- profile changes ------------------------------------------------------------------------


async def test_tc_084_a_downgrade_is_rejected(site: SimSite, tmp_path: Path,
                                              launch: Any) -> None:
    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server"))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca),
                 allow_unencrypted=True)
    await booted(site)
    assert await change(site, "SecurityProfile", "1") == "Rejected"
    assert await change(site, "SecurityProfile", "0") == "Rejected"
    assert await change(site, "SecurityProfile", "3") == "Rejected"  # no client cert yet
    result = await site.csms.call(call.GetConfiguration(key=["SecurityProfile"]))
    assert result.configuration_key[0]["value"] == "2"


async def test_tc_083_upgrade_that_fails_falls_back_and_is_reported(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    """Profile 1 -> 2 with a root installed, but the CSMS still speaks plain ws: the TLS
    attempts fail, the charger goes back to profile 1 and says so."""
    ca = TestCa()
    site.csms.password = KEY
    await launch(security_profile=1, password=KEY, allow_unencrypted=True)
    await booted(site)
    result = await site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate", certificate=ca.root_pem))
    assert result.status == "Accepted"
    assert await change(site, "SecurityProfile", "2") == "Accepted"
    await site.csms.wait_for(lambda: site.csms.connections >= 2, within=20)
    await site.csms.wait_for(lambda: any(
        kind == "ReconfigurationOfSecurityParameters" and info and "back to" in info
        for kind, info in site.csms.security_events), within=20)
    result = await site.csms.call(call.GetConfiguration(key=["SecurityProfile"]))
    assert result.configuration_key[0]["value"] == "1"


async def test_tc_083_upgrade_to_profile_2_is_kept(site: SimSite, tmp_path: Path,
                                                   launch: Any) -> None:
    ca = TestCa()
    site.csms.password = KEY
    agent = await launch(security_profile=1, password=KEY, allow_unencrypted=True)
    await booted(site)
    await site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate", certificate=ca.root_pem))
    context = server_context(ca, tmp_path / "server")
    assert await change(site, "SecurityProfile", "2") == "Accepted"
    await serve_tls(site, context)  # the CSMS moves to TLS as it asked
    await site.csms.wait_for(lambda: site.csms.session is not None
                             and site.csms.tls_sessions[-1] is not None, within=20)
    await site.csms.wait_for(lambda: agent.security.profiles.candidate is None
                             and agent.security.profiles.active.profile == 2)


async def test_tc_073_a_new_authorization_key_reconnects_and_is_write_only(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server"))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca))
    await booted(site)
    new_key = b"OCA_OCTT_admin_test".hex()
    site.csms.password = new_key  # the CSMS expects the new key from now on
    assert await change(site, "AuthorizationKey", new_key) == "Accepted"
    await site.csms.wait_for(lambda: site.csms.connections >= 2)
    await booted(site)
    result = await site.csms.call(call.GetConfiguration(key=["AuthorizationKey"]))
    entry = result.configuration_key[0]
    assert entry["key"] == "AuthorizationKey" and "value" not in entry
    assert await change(site, "AuthorizationKey", "short") == "Rejected"
    everything = await site.csms.call(call.GetConfiguration())
    assert new_key not in json.dumps(everything.configuration_key)


async def test_a_key_the_csms_refuses_falls_back_to_the_previous_one(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server"))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca))
    await booted(site)
    assert await change(site, "AuthorizationKey", "a-key-the-csms-does-not-know") == "Accepted"
    await site.csms.wait_for(lambda: any(kind == "FailedToAuthenticateAtCentralSystem"
                                         for kind, _ in site.csms.security_events), within=20)
    await site.csms.wait_for(lambda: any(
        kind == "ReconfigurationOfSecurityParameters" and info and "new AuthorizationKey" in info
        for kind, info in site.csms.security_events))


# --- certificates ---------------------------------------------------------------------------


async def test_tc_075_076_root_rotation_then_reconnect(site: SimSite, tmp_path: Path,
                                                       launch: Any) -> None:
    old, new = TestCa("Old Root"), TestCa("New Root")
    await serve_tls(site, server_context(old, tmp_path / "old"))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, old))
    await booted(site)
    result = await site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate", certificate=new.root_pem))
    assert result.status == "Accepted"
    ids = await site.csms.call(call.GetInstalledCertificateIds(
        certificate_type="CentralSystemRootCertificate"))
    assert ids.status == "Accepted"
    assert hash_of(new) in ids.certificate_hash_data and hash_of(old) in ids.certificate_hash_data
    # The CSMS rotates its server certificate to the new root and drops the connection.
    await serve_tls(site, server_context(new, tmp_path / "new"))
    await site.csms.wait_for(lambda: site.csms.connections >= 2, within=20)
    await booted(site)
    deleted = await site.csms.call(call.DeleteCertificate(certificate_hash_data=hash_of(old)))
    assert deleted.status == "Accepted"
    last = await site.csms.call(call.DeleteCertificate(certificate_hash_data=hash_of(new)))
    assert last.status == "Failed"  # the last CSMS root stays
    gone = await site.csms.call(call.DeleteCertificate(certificate_hash_data=hash_of(old)))
    assert gone.status == "NotFound"


async def test_additional_root_certificate_check_keeps_the_old_root_until_the_new_one_works(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    """AdditionalRootCertificateCheck (1.6 security whitepaper M05.FR.08-13): a new CSMS root
    must be signed by the installed one; the old one stays as a fallback, verifies the CSMS
    while it still shows a certificate of the old root, and goes once a connection verified
    with the new root succeeded."""
    old, new = TestCa("Old Root"), TestCa("New Root")
    await serve_tls(site, server_context(old, tmp_path / "old"))
    agent = await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, old),
                         additional_root_certificate_check=True)
    await booted(site)
    keys = await site.csms.call(call.GetConfiguration(key=["AdditionalRootCertificateCheck"]))
    assert keys.configuration_key == [{"key": "AdditionalRootCertificateCheck",
                                       "readonly": True, "value": "true"}]

    async def install(pem: str) -> str:
        result = await site.csms.call(call.InstallCertificate(
            certificate_type="CentralSystemRootCertificate", certificate=pem))
        return str(result.status)

    async def installed() -> int:
        ids = await site.csms.call(call.GetInstalledCertificateIds(
            certificate_type="CentralSystemRootCertificate"))
        return len(ids.certificate_hash_data or [])

    assert await install(new.root_pem) == "Rejected"  # M05.FR.10: not signed by the old
    assert await install(old.cross_sign(new)) == "Accepted"  # M05.FR.11
    assert await installed() == 2  # the new root and the fallback
    store = agent.security.store
    # The CSMS still shows its old certificate: the new root does not verify it, the
    # fallback does (M05.FR.13), and stays.
    await serve_tls(site, server_context(old, tmp_path / "old-again"))
    await site.csms.wait_for(lambda: site.csms.connections >= 2, within=30)
    await booted(site)
    assert store.fallback_root() is not None and await installed() == 2
    # The CSMS moves to its new root: connected with it, the fallback goes (M05.FR.12).
    await serve_tls(site, server_context(new, tmp_path / "new"))
    await site.csms.wait_for(lambda: site.csms.connections >= 3, within=30)
    await booted(site)
    assert store.fallback_root() is None and await installed() == 1
    await site.csms.wait_for(lambda: any(
        kind == "ReconfigurationOfSecurityParameters" and info and "fallback" in info
        for kind, info in site.csms.security_events))
    # The old root cannot verify the CSMS any more, and a restart does not bring the seed
    # file's old root back.
    await agent.stop()
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, old),
                 additional_root_certificate_check=True)
    await site.csms.wait_for(lambda: site.csms.connections >= 4, within=30)
    assert [r.certificate.subject for r in store.roots("CentralSystemRootCertificate")] == [
        new.certificate.subject]


async def test_tc_075_manufacturer_root_and_tc_078_invalid_root(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    await launch()
    await booted(site)
    maker = TestCa("Maker Root")
    result = await site.csms.call(call.InstallCertificate(
        certificate_type="ManufacturerRootCertificate", certificate=maker.root_pem))
    assert result.status == "Accepted"
    ids = await site.csms.call(call.GetInstalledCertificateIds(
        certificate_type="ManufacturerRootCertificate"))
    assert ids.certificate_hash_data == [hash_of(maker)]
    none = await site.csms.call(call.GetInstalledCertificateIds(
        certificate_type="CentralSystemRootCertificate"))
    assert none.status == "NotFound"
    expired = await site.csms.call(call.InstallCertificate(
        certificate_type="CentralSystemRootCertificate",
        certificate=TestCa("Expired", expired=True).root_pem))
    assert expired.status == "Rejected"
    await site.csms.wait_for(lambda: any(kind == "InvalidCentralSystemCertificate"
                                         for kind, _ in site.csms.security_events))


async def test_tc_074_077_087_profile_3_with_a_certificate_signed_on_the_device(
        site: SimSite, tmp_path: Path, launch: Any) -> None:
    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server", client_ca=ca))
    await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca), cpo_name=CPO)
    await booted(site)
    trigger = await site.csms.call(call.ExtendedTriggerMessage(
        requested_message="SignChargePointCertificate"))
    assert trigger.status == "Accepted"
    await site.csms.wait_for(lambda: site.csms.csrs)
    csr = x509.load_pem_x509_csr(site.csms.csrs[-1].encode())
    assert csr.subject.rfc4514_string() == f"O={CPO},CN={CHARGER_ID}"
    # TC_077: a certificate for another key is refused and reported.
    stranger = TestCa("Stranger")
    bad = await site.csms.call(call.CertificateSigned(certificate_chain=stranger.root_pem))
    assert bad.status == "Rejected"
    await site.csms.wait_for(lambda: any(kind == "InvalidChargePointCertificate"
                                         for kind, _ in site.csms.security_events))
    good = await site.csms.call(call.CertificateSigned(
        certificate_chain=ca.sign_csr(site.csms.csrs[-1])))
    assert good.status == "Accepted"
    key_file = site.workdir / "state" / "security" / "client.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    site.csms.password = None  # profile 3 authenticates with the certificate alone
    assert await change(site, "SecurityProfile", "3") == "Accepted"
    await site.csms.wait_for(lambda: site.csms.peer_certificates
                             and site.csms.peer_certificates[-1], within=20)
    subject = dict(item[0] for item in site.csms.peer_certificates[-1]["subject"])
    assert subject["commonName"] == CHARGER_ID
    assert site.csms.authorizations_seen[-1] is None  # profile 3: no Basic auth
    assert await change(site, "SecurityProfile", "2") == "Rejected"  # TC_084


# --- no secret in anything the agent writes -------------------------------------------------


@pytest.fixture
def console() -> Any:
    """The agent's console log as ``evse-agent run`` sets it up (frames shown too), into a
    buffer; process-wide logging is put back afterwards."""
    import io
    import logging

    from agent import logs

    root = logging.getLogger()
    names = [logs.FRAMES_LOGGER, *logs._QUIET_LIBRARIES]
    levels = {name: logging.getLogger(name).level for name in names}
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("DEBUG", ocpp_frames=True, stream=stream, secrets=(KEY,))
    yield stream
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


async def test_no_secret_in_any_log_status_or_file_the_agent_writes(
        site: SimSite, tmp_path: Path, launch: Any, console: Any) -> None:
    import base64

    ca = TestCa()
    await serve_tls(site, server_context(ca, tmp_path / "server"))
    agent = await launch(security_profile=2, password=KEY, ca_file=ca_file(tmp_path, ca),
                         cpo_name=CPO)
    await booted(site)
    new_key = "a-second-secret-key-0042"
    site.csms.password = new_key
    assert await change(site, "AuthorizationKey", new_key) == "Accepted"
    await site.csms.wait_for(lambda: site.csms.connections >= 2)
    await booted(site)
    await site.csms.call(call.ExtendedTriggerMessage(
        requested_message="SignChargePointCertificate"))
    await site.csms.wait_for(lambda: site.csms.csrs)
    signed = await site.csms.call(call.CertificateSigned(
        certificate_chain=ca.sign_csr(site.csms.csrs[-1])))
    assert signed.status == "Accepted"
    assert await change(site, "AuthorizationKey", "x") == "Rejected"  # an error path too
    snapshot = json.dumps(agent.snapshot())
    state = site.workdir / "state"
    private_key = (state / "security" / "client.key").read_text()
    await agent.stop()
    # The private scalar: in hex, and the PEM's second line (the first is a header common to
    # every P-256 key, the later ones the public key, which certificates carry too).
    scalar = serialization.load_pem_private_key(private_key.encode(), None)
    secrets = [KEY, new_key, private_key.splitlines()[2],
               format(scalar.private_numbers().private_value, "x"),  # type: ignore[union-attr]
               *[base64.b64encode(f"{CHARGER_ID}:{k}".encode()).decode() for k in (KEY, new_key)]]
    holders = {state / "security" / "state.json", state / "security" / "client.key"}
    written = {path: path.read_bytes() for path in state.rglob("*")
               if path.is_file() and path not in holders}
    assert any(p.name == "ocpp-frames.jsonl" for p in written)
    assert any(p.name == "security-log.jsonl" for p in written)
    everything = {"console": console.getvalue().encode(), "status": snapshot.encode(),
                  **{str(path): data for path, data in written.items()}}
    for where, data in everything.items():
        for secret in secrets:
            at = data.find(secret.encode())
            assert at < 0, f"a secret in {where}: {data[max(0, at - 300):at + 80]!r}"
    assert "AuthorizationKey" in console.getvalue()  # the frames were there, masked
