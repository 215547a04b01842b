"""Real file servers on loopback for the update and diagnostics tests: HTTP and FTP.

:class:`HttpFiles` is the standard library's threaded HTTP server over a directory: GET serves
files, PUT and POST store what they receive in ``uploads`` (a PUT answered 405 when
``refuse_put``, as some CSMS upload endpoints do, so the client's POST fallback runs).
``stall`` makes GETs of that name send half the file and then hang, for kill -9 mid-download.
Given a server ``tls`` context (tests/pki.py ``server_context``), it serves https: the
listening socket is wrapped (https://docs.python.org/3/library/ssl.html#ssl.SSLContext.wrap_socket),
so each connection's handshake runs in accept and a client that rejects the certificate never
gets to send a request.

:class:`FtpFiles` is pyftpdlib (https://pyftpdlib.readthedocs.io/en/latest/tutorial.html): an
anonymous read-only login and a user that may also write, on one directory. Given a
certificate and key (tests/pki.py ``TestCa.server_files``) it speaks explicit FTPS with
pyftpdlib's ``TLS_FTPHandler`` (pyOpenSSL), TLS required on the control and the data
connections, so a client that does not encrypt everything is refused.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

FTP_USER, FTP_PASSWORD = "tech", "ftp-secret"


class HttpFiles:
    def __init__(self, root: Path, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.scheme = "https" if tls is not None else "http"
        self.uploads: dict[str, bytes] = {}
        self.methods: list[tuple[str, str]] = []
        self.refuse_put = False
        self.stall: set[str] = set()
        self.release = threading.Event()  # ends a stall
        files = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # the stdlib's name
                files.methods.append(("GET", self.path))
                path = files.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if path.name in files.stall:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    files.release.wait(60)
                    return
                self.wfile.write(data)

            def _receive(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def do_PUT(self) -> None:
                files.methods.append(("PUT", self.path))
                if files.refuse_put:
                    self._receive()
                    self.send_error(405)
                    return
                files.uploads[self.path.rsplit("/", 1)[-1]] = self._receive()
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                files.methods.append(("POST", self.path))
                body = self._receive()
                match = re.search(rb'filename="([^"]+)"\r\nContent-Type: [^\r]+\r\n\r\n', body)
                if match is None:
                    self.send_error(400)
                    return
                end = body.rindex(b"\r\n--")
                files.uploads[match[1].decode()] = body[match.end():end]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}"


@contextmanager
def http_files(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[HttpFiles]:
    files = HttpFiles(root, tls)
    thread = threading.Thread(target=files.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        files.release.set()
        files.server.shutdown()
        files.server.server_close()


class FtpFiles:
    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.root = root
        authorizer = DummyAuthorizer()
        authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmw")
        authorizer.add_anonymous(str(root))
        attributes: dict[str, object] = {"authorizer": authorizer}
        base: type[FTPHandler] = FTPHandler
        if tls is not None:  # a class per server: pyftpdlib keeps its SSL context per class
            base = TLS_FTPHandler
            attributes.update(certfile=str(tls[0]), keyfile=str(tls[1]), ssl_context=None,
                              tls_control_required=True, tls_data_required=True)
        self.scheme = "ftps" if tls is not None else "ftp"
        handler = type("Handler", (base,), attributes)
        # Its own IO loop: pyftpdlib's default is one per process, which two servers running at
        # once (the kit's FTP and a test's FTPS) would share from two threads.
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
        self.port = self.server.address[1]

    def url(self, name: str, user: bool = False) -> str:
        login = f"{FTP_USER}:{FTP_PASSWORD}@" if user else ""
        return f"{self.scheme}://{login}127.0.0.1:{self.port}/{name}"


@contextmanager
def ftp_files(root: Path, tls: tuple[Path, Path] | None = None) -> Iterator[FtpFiles]:
    files = FtpFiles(root, tls)
    thread = threading.Thread(target=files.server.serve_forever,
                              kwargs={"timeout": 0.2, "handle_exit": False}, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        files.server.close_all()
        thread.join(5)


@contextmanager
def file_servers(root: Path) -> Iterator[tuple[HttpFiles, FtpFiles, Path]]:
    """Both servers on one new directory ``root``."""
    root.mkdir()
    with http_files(root) as http, ftp_files(root) as ftp:
        yield http, ftp, root
