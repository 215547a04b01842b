"""What every benchmark reports, and the command line every benchmark module shares.

A benchmark is a module ``benchmarks.<name>`` with ``main(argv)``; it runs with ``--quick``
(seconds, for the smoke test) or in full, prints a table and writes its :class:`Result` as
JSON with ``--json PATH``. The runner (``python -m benchmarks``) runs each module in its own
process and merges the JSON files, so any module that honours ``--quick`` and ``--json``
(``benchmarks/storage.py`` included) takes part.

Percentiles are nearest-rank: p99 of 1,000 samples is the 990th smallest, a value that was
actually measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JsonObject = dict[str, Any]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0 < p <= 100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> JsonObject:
    """p50/p90/p99/max/mean of durations given in seconds, in milliseconds, and the count."""
    ms = [s * 1000.0 for s in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 3),
        "p90": round(percentile(ms, 90), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3),
        "mean": round(sum(ms) / len(ms), 3),
    }


def fmt_ms(summary: JsonObject) -> str:
    """``p50 / p99 / max`` of a :func:`summary_ms` for the table."""
    if not summary.get("n"):
        return "no samples"
    return (f"p50 {summary['p50']:.2f}  p99 {summary['p99']:.2f}  max {summary['max']:.2f} ms"
            f"  (n={summary['n']})")


@dataclass
class Budget:
    """A limit a figure must meet: ``value <= limit`` (or ``>=`` when ``at_least``)."""

    name: str  # what a reader calls it: "safety p99 (driver seen -> output off)"
    metric: str  # dotted path into the result's metrics: "driver_to_off_ms.p99"
    limit: float
    unit: str
    value: float | None = None
    at_least: bool = False
    ratio: float | None = None  # value / a floor measured in the same run (see ``floor``)
    floor: str | None = None  # what the ratio is to: "bare ocpp charge point, 30.5 MB"

    @property
    def passed(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def text(self) -> str:
        op = ">=" if self.at_least else "<="
        return f"{op} {self.limit:g} {self.unit}"

    def to_json(self) -> JsonObject:
        data = asdict(self)
        data["passed"] = self.passed
        return data


@dataclass
class Result:
    """One benchmark's outcome: figures (``metrics``), table rows, budgets and notes."""

    name: str
    title: str
    measured: str  # one paragraph: what exactly was timed, from where to where
    quick: bool
    metrics: JsonObject = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def budget(self, name: str, metric: str, limit: float, unit: str, *,
               at_least: bool = False, ratio: float | None = None,
               floor: str | None = None) -> Budget:
        """Add a budget checked against ``metrics`` at ``metric`` (None if not measured);
        ``ratio`` to a ``floor`` measured in the same run is printed beside the figure."""
        value = lookup(self.metrics, metric)
        budget = Budget(name, metric, limit, unit,
                        float(value) if isinstance(value, int | float) else None, at_least,
                        ratio, floor)
        self.budgets.append(budget)
        return budget

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "title": self.title,
            "measured": self.measured,
            "quick": self.quick,
            "seconds": round(self.seconds, 2),
            "metrics": self.metrics,
            "rows": [list(r) for r in self.rows],
            "budgets": [b.to_json() for b in self.budgets],
            "notes": self.notes,
        }


def lookup(metrics: JsonObject, dotted: str) -> Any:
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# --- the machine ------------------------------------------------------------------------


def machine() -> JsonObject:
    """Where the figures came from: CPU, cores, memory, Python, kernel, commit."""
    return {
        "cpu_model": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "mem_total_mb": _mem_total_mb(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "commit": _commit(),
        "when": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --- printing ---------------------------------------------------------------------------

STATUS = {True: "PASS", False: "FAIL", None: "n/a"}


def render(result: JsonObject) -> str:
    """A readable block for one benchmark's JSON result (tolerates foreign or failed ones)."""
    lines = [f"== {result.get('name', '?')}: {result.get('title', '')}"]
    if result.get("error"):
        lines.append(f"   ERROR: {result['error']}")
        return "\n".join(lines)
    rows = result.get("rows") or [(k, json.dumps(v)) for k, v in result.get("metrics", {}).items()]
    width = max((len(label) for label, _ in rows), default=0)
    lines += [f"   {label:<{width}}  {value}" for label, value in rows]
    for budget in result.get("budgets", []):
        lines.append(f"   budget {budget_line(budget)}")
    lines += [f"   note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def budget_line(budget: JsonObject) -> str:
    op = ">=" if budget.get("at_least") else "<="
    value = budget.get("value")
    shown = "not measured" if value is None else f"{value:g} {budget.get('unit', '')}"
    if value is not None and budget.get("ratio") is not None:
        shown += f", {budget['ratio']:g}x the floor [{budget.get('floor')}]"
    return (f"{STATUS[budget.get('passed')]:<4}  {budget.get('name')}: {shown} "
            f"(budget {op} {budget.get('limit'):g} {budget.get('unit', '')})")


def say(line: str) -> None:
    """Progress for humans, on stderr so stdout stays the table."""
    print(line, file=sys.stderr, flush=True)


# --- the command line of one benchmark ----------------------------------------------------

Measure = Callable[[bool], Coroutine[Any, Any, Result]]


def benchmark_main(measure: Measure, argv: Sequence[str] | None, doc: str | None) -> int:
    """``python -m benchmarks.<name> [--quick] [--json PATH] [--check]``.

    Exit status 0 when the benchmark ran (1 with ``--check`` if a budget was missed), 2 when
    it could not run.
    """
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is missed")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = asyncio.run(measure(args.quick))
    result.seconds = time.monotonic() - started
    data = result.to_json()
    print(render(data), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    missed = any(b.passed is False for b in result.budgets)
    return 1 if args.check and missed else 0
