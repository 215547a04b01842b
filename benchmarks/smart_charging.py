"""Composite-schedule computation time for the largest stack the charger accepts.

    python -m benchmarks.smart_charging [--rounds N]

The stack: MaxChargingProfilesInstalled (16) profiles, each with ChargingScheduleMaxPeriods
(24) periods, over stack levels 0..ChargeProfileMaxStackLevel, all three purposes and all
three kinds (absolute, daily and weekly recurring, relative), in both units. Printed, as p50 /
p99 / max over the rounds:

* GetCompositeSchedule for one day (86,400 s) and for one week, in A;
* the limit in force now plus the next boundary (what the core does after every event);
* one whole ``Station.handle`` of a meter sample with that stack installed, and without any
  profile (the cost smart charging adds to every event).

Pure CPU in one process (agent/core/schedule.py has no I/O); not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.schedule import (
    ChargingProfile,
    ChargingSchedule,
    Electrical,
    SchedulePeriod,
    composite,
    limit_at,
    next_change,
)
from agent.core.settings import Settings, core_keys
from agent.core.station import ConnectorConfig, IdSource, Station, StationConfig
from agent.core.types import Now
from hal.roles import MeterReading

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KINDS = (("Absolute", None), ("Recurring", "Daily"), ("Recurring", "Weekly"),
         ("Relative", None))


def max_stack(count: int = 16, periods: int = 24, levels: int = 8) -> list[ChargingProfile]:
    stack = []
    for i in range(count):
        purpose = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")[i % 3]
        kind, recurrency = KINDS[i % len(KINDS)]
        unit = "W" if i % 2 else "A"
        scale = 690.0 if unit == "W" else 1.0
        low = 20 if purpose == "ChargePointMaxProfile" else 6  # a cap above most tx limits
        schedule = ChargingSchedule(
            unit, tuple(SchedulePeriod(p * 3600 + i, (low + (p * 7 + i) % (33 - low)) * scale,
                                       (1, 3, None)[p % 3]) for p in range(periods)),
            duration=86400 if i % 4 else None,
            start_schedule=None if kind == "Relative" else START - timedelta(hours=i))
        stack.append(ChargingProfile(i + 1, 0 if purpose == "ChargePointMaxProfile" else 1,
                                     i % (levels + 1), purpose, kind, schedule, recurrency))
    return stack


def timed(work: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(rounds):
        begin = time.perf_counter()
        work()
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, samples[-1]


def station(stack: list[ChargingProfile]) -> tuple[Station, Now]:
    config = StationConfig("Bench", "Core", (ConnectorConfig(1, 32.0),))
    refs = iter(range(1 << 30))
    core = Station(config, Settings(core_keys(1)),
                   IdSource(lambda: f"m{next(refs)}", lambda: next(refs)))
    core.restore_charging_profiles([p for p in stack if p.purpose != "TxProfile"])
    now = Now(0.0, START)
    core.handle(ev.Started(), now)
    return core, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    stack = max_stack()
    electrical = Electrical(230.0, None)
    tx_start = START - timedelta(minutes=30)
    rows = {
        "composite, 1 day (A)": lambda: composite(stack, START, 86400, tx_start, "A",
                                                  electrical, 32.0),
        "composite, 7 days (A)": lambda: composite(stack, START, 7 * 86400, tx_start, "A",
                                                   electrical, 32.0),
        "limit now + next boundary": lambda: (limit_at(stack, START, tx_start, "A", electrical),
                                              next_change(stack, START, tx_start)),
    }
    loaded, now = station(stack)
    empty, _ = station([])
    reading = ev.MeterSampled(1, MeterReading(1000.0, 0.0))
    rows["Station.handle(meter sample), 12 profiles"] = lambda: loaded.handle(reading, now)
    rows["Station.handle(meter sample), none"] = lambda: empty.handle(reading, now)
    request = msg.CsmsGetCompositeSchedule(1, 86400, "W")
    rows["Station.handle(GetCompositeSchedule 1 day, W)"] = lambda: loaded.handle(
        ev.CsmsCommand(request), now)
    periods = len(composite(stack, START, 86400, tx_start, "A", electrical, 32.0))
    print(f"stack: {len(stack)} profiles x {len(stack[0].schedule.periods)} periods; "
          f"one day's composite has {periods} periods; {rounds} rounds")
    print(f"{'work':48} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, work in rows.items():
        p50, p99, top = timed(work, rounds)
        print(f"{name:48} {p50:8.3f} {p99:8.3f} {top:8.3f}")


if __name__ == "__main__":
    main()
