"""Downloads and uploads for UpdateFirmware and GetDiagnostics: http(s) and ftp(s), with retries.

The transfers are blocking standard-library calls (``urllib.request`` for http(s), ``ftplib``
for ftp(s)) run in a worker thread so the event loop never waits on the network. No proxy is
used (the CSMS link does not use one either unless asked). A download goes to ``dest.part``
and is renamed to ``dest`` only when complete, so a kill -9 never leaves a file that looks
whole.

Uploads over http(s) are a PUT of the file; a server that answers 405 or 501 to PUT gets a
POST of the file as ``multipart/form-data`` (field ``file``), the form most CSMSs accept.
ftp URLs may carry ``user:password@``; without them the login is anonymous. ``ftps://`` is
explicit FTPS (RFC 4217, what ``ftplib.FTP_TLS`` speaks): the control connection on port 21
unless the URL names another, upgraded with AUTH TLS before the login, and the data
connections encrypted too (PROT P); implicit FTPS (TLS from the first byte, port 990) is not
supported.

https and ftps are verified with the context the caller's ``tls`` makes when it is needed
(the agent's: :func:`agent.security.tls.file_server_context`, the system's trust store plus
the installed roots; without ``tls``, Python's default context: the system's store): the
server's certificate must chain to a trusted root and name the URL's host, else the transfer
fails (``certificate verify failed``) and is retried like any other failure. Making the
context may fail too (a root file that cannot be read): that is a failed transfer, not a
crash.

References: https://docs.python.org/3/library/urllib.request.html,
https://docs.python.org/3/library/ftplib.html (``retrbinary``, ``storbinary``, ``FTP_TLS``).
"""

from __future__ import annotations

import asyncio
import ftplib
import logging
import os
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

SCHEMES = ("http", "https", "ftp", "ftps")
FTP_SCHEMES = ("ftp", "ftps")
_CHUNK = 64 * 1024


class TransferError(Exception):
    """A transfer failed; the text says what and where (never a password)."""

    retry = True  # worth another attempt


class BadLocation(TransferError):
    """The URL cannot name a server (no host)."""

    retry = False


class UnsupportedScheme(TransferError):
    """Neither http(s) nor ftp."""

    retry = False


class PermissionDenied(TransferError):
    """The server refused the credentials (HTTP 401/403, FTP 530)."""


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _check_scheme(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsupportedScheme(f"unsupported URL scheme {scheme!r} "
                                f"(allowed: {', '.join(SCHEMES)})")
    if not parts.hostname:
        raise BadLocation(f"{_where(url)} names no server")
    return scheme


TlsContext = Callable[[], ssl.SSLContext]
"""Makes the TLS client context of an https (or ftps) transfer, when one is needed."""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _opener(scheme: str, tls: TlsContext | None) -> urllib.request.OpenerDirector:
    if scheme != "https" or tls is None:
        return _OPENER
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPSHandler(context=tls()))


def download(url: str, dest: Path, timeout: float, tls: TlsContext | None = None) -> None:
    """Fetch ``url`` into ``dest`` (blocking). Raises TransferError."""
    scheme = _check_scheme(url)
    part = dest.with_name(dest.name + ".part")
    try:
        with part.open("wb") as out:
            if scheme in FTP_SCHEMES:
                with _Ftp(url, timeout, tls) as (ftp, path):
                    ftp.retrbinary(f"RETR {path}", out.write, _CHUNK)
            else:
                with _opener(scheme, tls).open(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, dest)
    except (OSError, ftplib.Error, urllib.error.URLError, ValueError) as error:
        part.unlink(missing_ok=True)
        raise TransferError(f"download of {_where(url)} failed: {_describe(error)}") from error


def upload(url: str, source: Path, timeout: float, tls: TlsContext | None = None) -> None:
    """Send ``source`` to ``url`` (blocking). Raises TransferError."""
    scheme = _check_scheme(url)
    try:
        if scheme in FTP_SCHEMES:
            with _Ftp(url, timeout, tls) as (ftp, path), source.open("rb") as data:
                target = path + source.name if path.endswith("/") else path
                ftp.storbinary(f"STOR {target}", data, _CHUNK)
            return
        target = url if not url.endswith("/") else url + source.name
        body = source.read_bytes()
        opener = _opener(scheme, tls)
        try:
            _http(opener, target, "PUT", body, "application/gzip", timeout)
        except urllib.error.HTTPError as error:
            if error.code not in (405, 501):
                raise
            boundary = uuid.uuid4().hex
            form = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="{source.name}"\r\nContent-Type: application/gzip\r\n\r\n'
                    ).encode() + body + f"\r\n--{boundary}--\r\n".encode()
            _http(opener, url, "POST", form, f"multipart/form-data; boundary={boundary}",
                  timeout)
    except (OSError, ftplib.Error, urllib.error.URLError, ValueError) as error:
        kind = PermissionDenied if _denied(error) else TransferError
        raise kind(f"upload to {_where(url)} failed: {_describe(error)}") from error


def _denied(error: BaseException) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in (401, 403)
    return isinstance(error, ftplib.error_perm) and str(error).startswith("530")


def _http(opener: urllib.request.OpenerDirector, url: str, method: str, body: bytes,
          content_type: str, timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type})
    with opener.open(request, timeout=timeout) as response:
        response.read()


class _Ftp:
    """A logged-in FTP (or explicit FTPS) session and the file's path on the server."""

    def __init__(self, url: str, timeout: float, tls: TlsContext | None) -> None:
        self.parts = urlsplit(url)
        if self.parts.scheme.lower() == "ftps":
            context = tls() if tls is not None else ssl.create_default_context()
            self.ftp: ftplib.FTP = ftplib.FTP_TLS(context=context, timeout=timeout)
        else:
            self.ftp = ftplib.FTP(timeout=timeout)

    def __enter__(self) -> tuple[ftplib.FTP, str]:
        p = self.parts
        self.ftp.connect(p.hostname or "", p.port or 21)
        # FTP_TLS.login sends AUTH TLS first and checks the server's certificate and host name.
        self.ftp.login(unquote(p.username or "anonymous"), unquote(p.password or "anonymous@"))
        if isinstance(self.ftp, ftplib.FTP_TLS):
            self.ftp.prot_p()  # the files travel encrypted too, not only the login
        path = unquote(p.path) or "/"
        return self.ftp, path

    def __exit__(self, *exc: object) -> None:
        try:
            self.ftp.quit()
        except (OSError, ftplib.Error):
            self.ftp.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


async def with_retries(attempt: Callable[[], None], retries: int, interval: float,
                       what: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                       ) -> None:
    """Run the blocking ``attempt`` in a thread, up to ``1 + retries`` times ``interval`` s
    apart (OCPP 1.6 retries/retryInterval). Raises the last TransferError."""
    tries = 1 + max(0, retries)
    for number in range(1, tries + 1):
        try:
            await asyncio.to_thread(attempt)
            return
        except TransferError as error:
            log.warning("%s: attempt %d of %d: %s", what, number, tries, error)
            if number == tries or not error.retry:
                raise
        await sleep(interval)
