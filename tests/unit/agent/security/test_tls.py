"""The profile 2/3 TLS client context against a real OpenSSL server on loopback: what it
refuses and which security event each refusal stands for (whitepaper A00.FR.315, .320, .322).

The server runs on blocking sockets in a thread so that OpenSSL sends its alerts (asyncio's
TLS server drops a failed handshake without one, see docs/security-requirements.md).
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from pathlib import Path

import pytest

from agent.security import events
from agent.security.profile import classify
from agent.security.tls import client_context, file_server_context
from tests.pki import TestCa, server_context


def handshake(server: ssl.SSLContext, ca: TestCa) -> BaseException | None:
    """Connect to ``server`` with the profile 2 context; the client's error, or None."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    with server.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=30) as raw, \
                    client_context(ca.root_pem).wrap_socket(raw, server_hostname="127.0.0.1"):
                error = None
        except (OSError, ssl.SSLError) as failure:
            error = failure
        thread.join(30)
        return error


def test_no_compression_and_tls_1_2_at_least() -> None:
    for context in (client_context(TestCa().root_pem), file_server_context("")):
        assert context.options & ssl.OP_NO_COMPRESSION  # A00.FR.320 / A00.FR.424
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_good_server_is_accepted(tmp_path: Path) -> None:
    ca = TestCa()
    assert handshake(server_context(ca, tmp_path), ca) is None


def test_a_server_that_only_speaks_tls_1_1_is_invalid_tls_version(tmp_path: Path) -> None:
    ca = TestCa()
    server = server_context(ca, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1, on purpose
        server.minimum_version = ssl.TLSVersion.TLSv1
        server.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        server.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL offer TLS 1.1 at all
    except ssl.SSLError:
        pytest.skip("this OpenSSL cannot be made to serve TLS 1.1")
    error = handshake(server, ca)
    assert error is not None
    assert classify(error)[0] == events.INVALID_TLS_VERSION


def test_a_server_without_the_extensions_suites_is_invalid_tls_cipher_suite(
        tmp_path: Path) -> None:
    ca = TestCa()
    server = server_context(ca, tmp_path)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    server.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA")  # CBC only
    error = handshake(server, ca)
    assert error is not None
    assert classify(error)[0] == events.INVALID_TLS_CIPHER_SUITE
