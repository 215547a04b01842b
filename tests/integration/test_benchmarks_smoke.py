"""The benchmark runner keeps working: a quick run produces a report for every benchmark.

Timings are never asserted here (they depend on the machine); ``python -m benchmarks`` is
where the figures and the budgets are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import available

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_reports_every_benchmark(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    names = available()
    assert {"safety", "card_to_contactor", "remote_start", "footprint", "startup", "replay",
            "scale"} <= set(names)
    assert set(report["benchmarks"]) == set(names)
    for name in names:
        result = report["benchmarks"][name]
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["metrics"], name
    assert report["machine"]["nproc"] >= 1
    assert all("passed" in budget for budget in report["budgets"])
    # Memory and idle CPU are printed beside their ratio to the floor of the same run.
    assert all(budget["ratio"] is not None
               for budget in report["benchmarks"]["footprint"]["budgets"])


@pytest.mark.slow
def test_the_local_features_benchmark_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.local_features", "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    for configuration in ("none", "mqtt", "dashboard", "dashboard+mqtt"):
        assert report[configuration]["idle_rss_mb"] > 0, configuration
        assert report[configuration]["charging_rss_mb"] > 0, configuration
    assert "added_idle_rss_mb" in report["dashboard+mqtt"]
