"""Card presented -> contactor output closed, with the EV already plugged in and in state C.

Online: the RDM6300 frame is written to the reader's pty (the world's ``present_card``, the
bench API's verb) at ``t0``; the agent reads it on the reader thread, the core asks the CSMS
(Authorize), reads the meter for meterStart, sends StartTransaction and closes the contactor.
Each session uses a new card, so nothing comes from the authorization cache.

Offline: the link to the CSMS is cut and cards accepted online earlier are presented again;
the agent may start from its authorization cache (LocalAuthorizeOffline). If no contactor
closes, the figure is reported as not available rather than estimated.

    python -m benchmarks.card_to_contactor [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import (
    InProcessAgent,
    SiteThread,
    agent_in_site,
    card,
    plug_in_c,
    wait_contactor,
    wait_status,
)
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms
from evsim.csms import Csms
from evsim.site import SiteOptions

FULL_SESSIONS, QUICK_SESSIONS = 50, 5
FULL_OFFLINE, QUICK_OFFLINE = 20, 3
OFFLINE_WAIT = 3.0  # how long an offline card may take before the path counts as absent
SETTLE = 0.05  # after the plug-in is reported, before the card


@dataclass(frozen=True)
class Session:
    card_to_closed: float
    card_to_authorize: float | None
    card_to_start: float | None
    card_to_start_conf: float | None

    @property
    def closed_before_start_conf(self) -> bool:
        return self.card_to_start_conf is not None and self.card_to_closed < self.card_to_start_conf


def call_and_answer(csms: Csms, action: str, since: int) -> tuple[float, float] | None:
    """When the charger's first ``action`` call after frame ``since`` arrived and when the
    CSMS's answer to it left."""
    frames = csms.frames[since:]
    for frame in frames:
        if frame.direction == "in" and frame.message_type == 2 and frame.action == action:
            unique_id = json.loads(frame.raw)[1]
            for answer in frames:
                if answer.direction == "out" and answer.message_type == 3 and \
                        json.loads(answer.raw)[1] == unique_id:
                    return frame.at, answer.at
            return frame.at, float("nan")
    return None


async def _online(site: SiteThread, agent: InProcessAgent, sessions: int) -> list[Session]:
    csms, world, probes = site.site.csms, site.site.world, agent.probes[1]
    out: list[Session] = []
    for k in range(1, sessions + 1):
        await plug_in_c(world, probes, 1)
        await wait_status(csms, 1, "Preparing")
        await asyncio.sleep(SETTLE)
        since = len(csms.frames)
        t0 = time.monotonic()
        world.present_card(card(k))
        closed = await wait_contactor(probes, t0, True)
        await csms.wait_for(functools.partial(_answered, csms, "StartTransaction", since))
        authorize = call_and_answer(csms, "Authorize", since)
        start = call_and_answer(csms, "StartTransaction", since)
        out.append(Session(
            card_to_closed=closed.at - t0,
            card_to_authorize=authorize[0] - t0 if authorize else None,
            card_to_start=start[0] - t0 if start else None,
            card_to_start_conf=start[1] - t0 if start else None,
        ))
        world.unplug(1)
        await wait_status(csms, 1, "Available")
    return out


def _answered(csms: Csms, action: str, since: int) -> bool:
    found = call_and_answer(csms, action, since)
    return found is not None and found[1] == found[1]  # not NaN


async def _call(function: Any) -> None:
    function()


async def _offline(site: SiteThread, agent: InProcessAgent, cards: list[str]) -> list[float]:
    """Sessions with the link cut; an empty list when no contactor closes offline."""
    csms, world, probes = site.site.csms, site.site.world, agent.probes[1]
    await agent.on_agent_loop(agent.link_down())
    await csms.wait_for(lambda: csms.session is None)
    stops_before = len(csms.calls("StopTransaction"))
    latencies: list[float] = []
    try:
        for uid in cards:
            await plug_in_c(world, probes, 1)
            await asyncio.sleep(SETTLE * 2)  # no CSMS to tell us the core has the plug-in
            t0 = time.monotonic()
            world.present_card(uid)
            closed = await probes.contactor.timeline.await_after(t0, lambda v: v is True,
                                                                 OFFLINE_WAIT)
            t1 = time.monotonic()
            world.unplug(1)
            if closed is None:
                return []
            await wait_contactor(probes, t1, False)
            await asyncio.sleep(SETTLE * 2)
            latencies.append(closed.at - t0)
    finally:
        await agent.on_agent_loop(_call(agent.link_up))
        await csms.wait_for(lambda: csms.session is not None)
    # The offline sessions' transaction messages are delivered after the reconnect.
    await csms.wait_for(lambda: len(csms.calls("StopTransaction")) >= stops_before
                        + len(latencies), 30)
    return latencies


async def measure(quick: bool) -> Result:
    sessions = QUICK_SESSIONS if quick else FULL_SESSIONS
    offline_count = QUICK_OFFLINE if quick else FULL_OFFLINE
    say(f"card_to_contactor: {sessions} online and {offline_count} offline sessions")
    options = SiteOptions(sample_interval=1, ocpp_frames=False)
    async with agent_in_site(options) as (site, agent):
        online = await site.run(_online(site, agent, sessions))
        offline = await site.run(
            _offline(site, agent, [card(k) for k in range(1, offline_count + 1)]))
    metrics: dict[str, Any] = {
        "online_ms": summary_ms([s.card_to_closed for s in online]),
        "online_card_to_authorize_ms": summary_ms(
            [s.card_to_authorize for s in online if s.card_to_authorize is not None]),
        "online_card_to_start_transaction_ms": summary_ms(
            [s.card_to_start for s in online if s.card_to_start is not None]),
        "online_card_to_start_conf_ms": summary_ms(
            [s.card_to_start_conf for s in online if s.card_to_start_conf is not None]),
        "closed_before_start_conf": sum(s.closed_before_start_conf for s in online),
        "offline_available": bool(offline),
        "offline_ms": summary_ms(offline) if offline else None,
    }
    result = Result(
        name="card_to_contactor",
        title="card presented -> contactor output closed (EV in C)",
        measured=(
            "RDM6300 frame written to the reader's pty -> the GpioContactor output switched on. "
            "Online: Authorize and StartTransaction answered by the CSMS on loopback, a new "
            "card per session. Offline: link cut, cards accepted online earlier."
        ),
        quick=quick,
        metrics=metrics,
    )
    result.row("online: card -> contactor closed", fmt_ms(metrics["online_ms"]))
    result.row("  card -> Authorize at the CSMS", fmt_ms(metrics["online_card_to_authorize_ms"]))
    result.row("  card -> StartTransaction at the CSMS",
               fmt_ms(metrics["online_card_to_start_transaction_ms"]))
    result.row("  card -> StartTransaction.conf sent",
               fmt_ms(metrics["online_card_to_start_conf_ms"]))
    result.row("offline (authorization cache): card -> closed",
               fmt_ms(metrics["offline_ms"]) if offline else "not available")
    result.budget("card -> contactor online p50", "online_ms.p50", 50, "ms")
    closed_first = metrics["closed_before_start_conf"]
    result.notes.append(
        f"the contactor closed before StartTransaction.conf in {closed_first} of "
        f"{len(online)} sessions: the agent closes once Authorize is accepted and meterStart "
        "is read; StartTransaction follows through the ordered transaction queue")
    if not offline:
        result.notes.append("offline start: no contactor closed within "
                            f"{OFFLINE_WAIT:.0f} s with the link cut, so no figure is given")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
