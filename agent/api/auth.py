"""Bearer tokens of the sessions API: from ``[[api.token]]`` and ``api.tokens_file``.

Tokens are compared in constant time (:func:`hmac.compare_digest`) against every known token,
so neither the match nor its position leaks through timing. No token is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import API_SCOPES, ApiConfig
from agent.security.files import read_secret_file


class TokenFileError(ValueError):
    """The tokens file is unreadable, readable by others, or has a bad line (named)."""


@dataclass(frozen=True)
class Tokens:
    entries: tuple[tuple[str, bytes], ...] = field(repr=False)  # (scope, secret)

    def scope_of(self, presented: str) -> str | None:
        """The scope of the token presented, or None; every entry is compared."""
        given = presented.encode()
        found: str | None = None
        for scope, secret in self.entries:
            if hmac.compare_digest(given, secret) and found != "control":
                found = scope
        return found


def load_tokens(config: ApiConfig) -> Tokens:
    entries = [(t.scope, t.secret.encode()) for t in config.tokens]
    path = config.tokens_file
    if path is not None:
        entries.extend(_read_file(path))
    return Tokens(tuple(entries))


def _read_file(path: Path) -> list[tuple[str, bytes]]:
    text = read_secret_file(path, "api.tokens_file", TokenFileError)
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        scope, _, secret = line.strip().partition(" ")
        secret = secret.strip()
        if scope not in API_SCOPES or len(secret) < 16:
            raise TokenFileError(f"api.tokens_file: {path} line {number}: expected "
                                 f"'<scope> <secret>' with scope one of {', '.join(API_SCOPES)} "
                                 "and a secret of at least 16 characters")
        entries.append((scope, secret.encode()))
    return entries


STREAM_COOKIE = "evse_stream"
TICKET_SECONDS = 12 * 3600


class StreamTickets:
    """Signed tickets for the event stream, which a browser opens with ``EventSource``: that
    API cannot set an ``Authorization`` header (WHATWG HTML, "The EventSource interface"), so
    ``POST /api/v1/login`` checks the bearer token and sets the ticket as an HttpOnly,
    SameSite=Strict cookie scoped to ``/api/v1/events``. A ticket is ``scope.expiry.mac``, an
    HMAC-SHA256 under a key made at start-up: it expires after :data:`TICKET_SECONDS` and with
    every restart of the agent, and it opens the (read-only) event stream only, so a forged
    cross-site request can do nothing with it."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def issue(self, scope: str, now: float) -> str:
        body = f"{scope}.{int(now) + TICKET_SECONDS}"
        return f"{body}.{self._mac(body)}"

    def scope_of(self, ticket: str, now: float) -> str | None:
        """The ticket's scope while it is genuine and unexpired, else None."""
        body, _, mac = ticket.rpartition(".")
        scope, _, expiry = body.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        if scope not in API_SCOPES or not expiry.isdigit() or int(expiry) < now:
            return None
        return scope

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
