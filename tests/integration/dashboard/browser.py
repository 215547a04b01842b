"""A real headless Chromium for the dashboard's tests, driven with Playwright for Python.

The browser is the distribution's (Debian's ``chromium`` package at /usr/bin/chromium), never
one Playwright downloads (``playwright install`` is not run; the Playwright wheel carries its
own driver). When it is missing and we are root with apt-get, it is installed here, as
``.ci/run`` does; the test is skipped, saying why, only where no browser can be installed.
Each launch gets a fresh profile directory (Playwright's ``launch_persistent_context``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
INSTALL_TIMEOUT = 900


def chromium() -> str:
    """The browser's path, installing Debian's package when missing; skips when impossible."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("no Chromium: the browser test needs Debian's chromium package "
                    f"({INSTALL}, as root)")
    result = subprocess.run(["sh", "-c", INSTALL], capture_output=True, text=True,
                            timeout=INSTALL_TIMEOUT, check=False)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"no Chromium, and installing it failed: {result.stderr.strip()[-400:]}")
    return found


def artifacts() -> Path:
    """Where screenshots go: $EVSE_TEST_ARTIFACTS, else a folder in the temporary directory."""
    folder = Path(os.environ.get("EVSE_TEST_ARTIFACTS")
                  or Path(tempfile.gettempdir()) / "evse-agent-artifacts") / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@asynccontextmanager
async def browser(profile: Path, **context: Any) -> AsyncIterator[Any]:
    """A Playwright browser context on the system Chromium (``BrowserContext``)."""
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright for Python is in the dev extras")
    executable = chromium()
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS,
            accept_downloads=True, **context)
        try:
            yield launched
        finally:
            await launched.close()
