#!/usr/bin/env python3
"""Developer entry point: sets itself up, then runs the demo or the checks.

    python3 dev.py demo [demo options]   one charging session on simulated hardware
    python3 dev.py test [pytest options] lint, types, import contracts and the whole test suite
    python3 dev.py shell                 a shell with the virtual environment active

Needs only Python >= 3.11 and the package index. The virtual environment lives in .venv and
is (re)installed whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"


def say(line: str) -> None:
    print(f"[dev] {line}", flush=True)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"evse-agent needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "python").exists():
        return
    if not (BIN / "python").exists():
        say(f"creating the virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    say("installing evse-agent and its test tools (first run only; takes a minute)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def run(*command: str) -> int:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def workers(args: list[str]) -> list[str]:
    """Two pytest workers unless the caller chose (-n, --numprocesses, -p no:xdist): most
    integration tests wait on loopback peers and timers, so two share two cores well and the
    suite takes about half the time of one worker."""
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist"
                 for a in args)
    return [] if chosen else ["-n", "2"]


def test(args: list[str]) -> int:
    steps = [
        ("lint", ["ruff", "check", "agent", "hal", "hardware-sim", "tests", "benchmarks"]),
        ("types", ["mypy"]),
        ("import contracts", ["lint-imports"]),
        ("tests", ["pytest", *workers(args), *args]),
    ]
    failed = []
    for name, command in steps:
        say(f"{name}: {' '.join(command)}")
        if run(str(BIN / command[0]), *command[1:]) != 0:
            failed.append(name)
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    say("all checks passed")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "shell"):
        print(__doc__)
        return 2
    ensure_venv()
    verb, rest = argv[0], argv[1:]
    if verb == "demo":
        return run(str(BIN / "evsim"), "demo", *rest)
    if verb == "test":
        return test(rest)
    return run(os.environ.get("SHELL", "/bin/sh"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
