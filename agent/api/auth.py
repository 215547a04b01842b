"""Bearer tokens of the sessions API: from ``[[api.token]]`` and ``api.tokens_file``.

Tokens are compared in constant time (:func:`hmac.compare_digest`) against every known token,
so neither the match nor its position leaks through timing. No token is ever logged.
"""

from __future__ import annotations

import hmac
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
