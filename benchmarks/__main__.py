"""Run every benchmark, print a table and a JSON report, and check the budgets.

    python -m benchmarks [--quick] [--only NAME,...] [--json PATH] [--check]

Each benchmark runs in its own process (``python -m benchmarks.<name>``), one after the other,
so none inherits another's threads, memory or warm caches. The JSON report holds the machine,
every benchmark's figures and every budget with its verdict; without ``--json`` it is printed
after the table. Exit status: 0 when every benchmark ran, 1 when one failed to run (or, with
``--check``, when a budget was missed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import ROOT, JsonObject, budget_line, machine, render, say

# In the order they run: the short ones first.
BENCHMARKS = (
    "safety",
    "card_to_contactor",
    "remote_start",
    "startup",
    "replay",
    "storage",
    "footprint",
    "scale",
)
TIMEOUT = {True: 120.0, False: 1800.0}  # seconds per benchmark: quick, full


def available() -> list[str]:
    """The benchmarks whose module exists in this checkout."""
    return [name for name in BENCHMARKS if importlib.util.find_spec(f"benchmarks.{name}")]


def run_one(name: str, quick: bool, scratch: Path) -> JsonObject:
    """Run ``benchmarks.<name>`` in a child process; its JSON result, or an error entry."""
    out = scratch / f"{name}.json"
    command = [sys.executable, "-m", f"benchmarks.{name}", "--json", str(out)]
    if quick:
        command.append("--quick")
    started, before = time.monotonic(), load_average()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=TIMEOUT[quick], check=False)
    except subprocess.TimeoutExpired:
        return _error(name, f"did not finish within {TIMEOUT[quick]:.0f} s", started)
    if done.returncode not in (0, 1) or not out.exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        return _error(name, f"exit status {done.returncode}: {tail}", started)
    result: JsonObject = json.loads(out.read_text())
    result.setdefault("name", name)
    result["load_average"] = [before, load_average()]
    return result


def load_average() -> float | None:
    """The 1-minute load average: others' work on a shared machine shows up in the figures."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _error(name: str, message: str, started: float) -> JsonObject:
    return {"name": name, "error": message, "seconds": round(time.monotonic() - started, 2)}


def budget_table(results: dict[str, JsonObject]) -> tuple[list[JsonObject], str]:
    budgets = [dict(b, benchmark=name) for name, r in results.items()
               for b in r.get("budgets", [])]
    lines = ["== budgets"] + [f"   {budget_line(b)}" for b in budgets]
    return budgets, "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds per benchmark (smoke test; figures mean little)")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated benchmark names")
    parser.add_argument("--json", metavar="PATH", help="write the JSON report here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is missed")
    args = parser.parse_args(argv)
    names = available()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    started = time.monotonic()
    results: dict[str, JsonObject] = {}
    with tempfile.TemporaryDirectory(prefix="evse-bench-report-") as scratch:
        for name in names:
            say(f"[benchmarks] {name}{' (quick)' if args.quick else ''} ...")
            results[name] = run_one(name, args.quick, Path(scratch))
            say(f"[benchmarks] {name}: {results[name].get('seconds', 0):.1f} s, load average "
                f"{results[name].get('load_average')}"
                + (" ERROR" if results[name].get("error") else ""))
    budgets, budget_text = budget_table(results)
    report: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "benchmarks": results,
        "budgets": budgets,
        "all_ran": not any(r.get("error") for r in results.values()),
        "all_budgets_met": all(b.get("passed") for b in budgets),
    }
    m = report["machine"]
    print(f"evse-agent benchmarks{' (quick)' if args.quick else ''} on {m['cpu_model']}, "
          f"{m['nproc']} CPU(s), Python {m['python']}, commit {m['commit']}\n")
    for result in results.values():
        print(render(result) + "\n")
    print(budget_text)
    text = json.dumps(report, indent=2) + "\n"
    if args.json:
        Path(args.json).write_text(text)
        print(f"\nJSON report: {args.json}")
    else:
        print("\n" + text)
    if not report["all_ran"]:
        return 1
    return 1 if args.check and not report["all_budgets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
