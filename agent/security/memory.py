"""Flash and RAM running out: the security event MemoryExhaustion.

The OCPP 1.6 security extension lists MemoryExhaustion ("the Flash or RAM memory of the Charge
Point is getting full", critical). The agent measures both: the free space of the file system
under ``state_dir`` (the SD card holding the store, the journal and the logs) and the RAM the
kernel reports available (``MemAvailable`` in /proc/meminfo). :class:`MemoryWatch` says when
either falls below :data:`LOW` of its total, once per episode: it re-arms only after the free
share is back above :data:`RECOVERED`, so a level hovering at the threshold is one event.
The event is raised while there is still room to journal it, not when a write already failed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

LOW = 0.05  # free share of the disk or of RAM below which the memory is "getting full"
RECOVERED = 0.10  # free share above which a new shortage counts as a new event
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Free:
    """Free shares, 0..1; ``ram`` is None where the kernel does not say."""

    disk: float
    ram: float | None


def measure(directory: Path, meminfo: Path = MEMINFO) -> Free:
    """What is free now on ``directory``'s file system and in RAM."""
    usage = shutil.disk_usage(directory)
    return Free(usage.free / usage.total if usage.total else 1.0, _ram_free(meminfo))


def _ram_free(meminfo: Path) -> float | None:
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        value = rest.split()
        if value and value[0].isdigit():
            fields[name] = int(value[0])
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        return None
    return available / total


class MemoryWatch:
    """Feed it :class:`Free` readings; it answers the techInfo of a new shortage, else None."""

    def __init__(self) -> None:
        self._short: set[str] = set()

    def check(self, free: Free) -> str | None:
        news = []
        for part, share in (("disk", free.disk), ("RAM", free.ram)):
            if share is None:
                continue
            if share < LOW and part not in self._short:
                self._short.add(part)
                news.append(f"{part} {share:.1%} free")
            elif share > RECOVERED:
                self._short.discard(part)
        return ", ".join(news) or None
