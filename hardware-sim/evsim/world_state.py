"""The world's durable state: what survives the agent and a world restart.

Per connector: whether the EV is plugged and what it shows, the bench's draw cap and the
meter's import energy. Written atomically (temporary file + rename), so a reader sees the
old or the new file, never half of one. Format::

    {"version": 1, "connectors": {"1": {"ev_state": "C", "draw_a": null, "energy_wh": 1234567.8}}}
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evsim.ev import EvState, PowerPath

logger = logging.getLogger(__name__)

VERSION = 1


def write(path: Path, paths: Mapping[int, PowerPath]) -> None:
    """Replace ``path`` with the state of ``paths`` (connector id -> power path)."""
    data = {"version": VERSION, "connectors": {str(cid): _entry(p) for cid, p in paths.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def restore(path: Path, paths: Mapping[int, PowerPath]) -> None:
    """Load ``path`` into ``paths`` if it exists; unknown connectors are ignored.

    A missing file leaves the configured initial state; an unreadable one is logged and
    ignored rather than stopping the world.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for cid, entry in data["connectors"].items():
            if int(cid) in paths:
                _apply(entry, paths[int(cid)])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable world state %s: %s", path, exc)
        return
    logger.info("world state restored from %s", path)


def _entry(path: PowerPath) -> dict[str, Any]:
    return {"ev_state": path.ev.state.value, "draw_a": path.ev.draw_a, "energy_wh": path.energy_wh}


def _apply(entry: dict[str, Any], path: PowerPath) -> None:
    state = EvState(entry["ev_state"])
    draw = entry.get("draw_a")
    energy = float(entry["energy_wh"])
    path.ev.state = state
    path.ev.draw_a = None if draw is None else float(draw)
    path.energy_wh = energy
