"""File modes checked at start: secrets must not be readable by others.

* the configuration file holds the CSMS password: group- or world-writable, or
  world-readable, is warned about (the installer makes it 0640 root:evse-agent);
* the private keys and the security state (``client.key``, ``pending.key``, ``next.key``,
  ``state.json``
  with the AuthorizationKey) must be the service user's alone: any group or other bit stops
  the agent (:class:`UnsafeKeyFile`), since a key that others could read is already lost.
"""

from __future__ import annotations

import stat
from pathlib import Path

PRIVATE_FILES = ("client.key", "pending.key", "next.key", "state.json")


class UnsafeKeyFile(PermissionError):
    """A private key or the security state is readable or writable by others."""


def config_file_warning(path: Path) -> str | None:
    """A warning for a configuration file others may read or change, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH):
        return (f"{path} is mode {stat.S_IMODE(mode):04o}: it holds the CSMS password; "
                "make it 0640 or 0600 (chmod 0640, owned by root:evse-agent)")
    return None


def check_private_files(directory: Path) -> None:
    """Raise UnsafeKeyFile for a private file of ``directory`` with group or other bits."""
    for name in PRIVATE_FILES:
        path = directory / name
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            raise UnsafeKeyFile(f"{path} is mode {stat.S_IMODE(mode):04o}; a private key or "
                                "credential must be 0600 and owned by the service user "
                                f"(chmod 0600 {path})")


def read_secret_file(path: Path, key: str, error: type[ValueError]) -> str:
    """The text of a secrets file named by configuration ``key`` (the API's tokens file,
    the MQTT password file): raises ``error`` naming the key when it cannot be read or is
    readable by others (allowed: 600 or 400)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{key}: cannot read {path}: {problem.strerror or problem}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{key}: {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                    "allowed: 600 or 400")
    return text
