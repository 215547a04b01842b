"""Bearer tokens of the sessions API: from ``[[api.token]]`` and ``api.tokens_file``.

Tokens are compared in constant time (:func:`hmac.compare_digest`) against every known token,
so neither the match nor its position leaks through timing. No token is ever logged.
"""

from __future__ import annotations

import hmac
import stat
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import API_SCOPES, ApiConfig


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
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TokenFileError(f"api.tokens_file: cannot read {path}: "
                             f"{error.strerror or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(f"api.tokens_file: {path} is readable by others (mode "
                             f"{stat.S_IMODE(mode):o}); allowed: 600 or 400")
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
