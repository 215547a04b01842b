"""The release package: what an UpdateFirmware location points at.

A release package is a gzip'd tar archive (``evse-agent-<version>.tar.gz``) holding::

    manifest.json                 {"format": "evse-agent-release/1", "name": "evse-agent",
                                   "version": "0.2.0", "requirement": "evse-agent==0.2.0",
                                   "files": {"wheels/evse_agent-0.2.0-py3-none-any.whl":
                                             "<sha256 hex>", ...}}
    wheels/evse_agent-0.2.0-py3-none-any.whl
    wheels/<any dependency wheels, for chargers without the package index>

Every file in the archive other than the manifest must be listed with its sha256, and every
listed file must be there: a truncated or altered download is refused before anything is
installed. Paths are plain relative names (no ``..``, no links, no devices).

Build one with ``python -m agent.maintenance.package build WHEEL [WHEEL...] -o OUT`` (the first
wheel is the agent's; docs/updates.md), check one with ``... verify ARCHIVE``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

FORMAT = "evse-agent-release/1"
MANIFEST = "manifest.json"
NAME = "evse-agent"
_WHEEL = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class PackageError(Exception):
    """The archive is not a valid release package; the text says why."""


@dataclass(frozen=True)
class Manifest:
    version: str
    requirement: str  # what pip installs, e.g. "evse-agent==0.2.0"
    files: dict[str, str]  # relative path -> sha256 hex

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "name": NAME, "version": self.version,
                           "requirement": self.requirement, "files": self.files},
                          indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: bytes) -> Manifest:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT or raw.get("name") != NAME:
                raise PackageError(f"not an {NAME} release (format {raw.get('format')!r})")
            files = {str(k): str(v) for k, v in raw["files"].items()}
            return cls(str(raw["version"]), str(raw["requirement"]), files)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise PackageError(f"unreadable manifest: {error}") from error


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_version(wheel: Path) -> str:
    match = _WHEEL.match(wheel.name)
    if match is None or match["name"].replace(".", "_").lower() != "evse_agent":
        raise PackageError(f"{wheel.name} is not an evse-agent wheel")
    return match["version"]


def build(wheels: Sequence[Path], out: Path) -> Manifest:
    """Write the package for the agent wheel ``wheels[0]`` (and dependency wheels after it)."""
    version = wheel_version(wheels[0])
    files = {f"wheels/{w.name}": sha256(w.read_bytes()) for w in wheels}
    manifest = Manifest(version, f"{NAME}=={version}", files)
    with tarfile.open(out, "w:gz") as tar:
        data = manifest.to_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for wheel in wheels:
            tar.add(wheel, f"wheels/{wheel.name}", recursive=False)
    return manifest


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name == str(path)


def verify(archive: Path) -> Manifest:
    """The manifest of a complete, unaltered package; PackageError otherwise."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if MANIFEST not in members:
                raise PackageError("no manifest.json")
            manifest = Manifest.from_json(_read(tar, members[MANIFEST]))
            for name, member in members.items():
                if name == MANIFEST:
                    continue
                if not member.isfile() or not _safe(name):
                    raise PackageError(f"{name}: not a plain file inside the package")
                if name not in manifest.files:
                    raise PackageError(f"{name}: not in the manifest")
            for name, digest in manifest.files.items():
                if name not in members:
                    raise PackageError(f"{name}: listed in the manifest but missing")
                if sha256(_read(tar, members[name])) != digest:
                    raise PackageError(f"{name}: sha256 does not match the manifest")
            if not any(PurePosixPath(n).name.startswith("evse_agent-") for n in manifest.files):
                raise PackageError("no evse-agent wheel in the package")
            return manifest
    except (tarfile.TarError, OSError, EOFError) as error:  # EOFError: a truncated gzip
        raise PackageError(f"unreadable archive: {error}") from error


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tar.extractfile(member)
    if file is None:
        raise PackageError(f"{member.name}: not a file")
    return file.read()


def unpack(archive: Path, dest: Path) -> Manifest:
    """Verify, then extract into ``dest`` (the "data" filter refuses anything unsafe)."""
    manifest = verify(archive)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.maintenance.package",
                                     description="Build or verify an evse-agent release package.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    build_p = verbs.add_parser("build", help="package the agent wheel (and dependency wheels)")
    build_p.add_argument("wheels", nargs="+", type=Path,
                         help="the evse-agent wheel first, then any dependency wheels")
    build_p.add_argument("-o", "--output", type=Path, required=True)
    verify_p = verbs.add_parser("verify", help="check a package's manifest and checksums")
    verify_p.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.verb == "build":
            manifest = build(args.wheels, args.output)
            print(f"{args.output}: {NAME} {manifest.version}, {len(manifest.files)} wheel(s)")
        else:
            manifest = verify(args.archive)
            print(f"{args.archive}: {NAME} {manifest.version}: OK")
    except (PackageError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
