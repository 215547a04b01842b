"""The host clock, read in one place so the core never has to."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from agent.core.types import Now


def now() -> Now:
    return Now(time.monotonic(), datetime.now(UTC))
