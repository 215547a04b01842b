"""The report prints each budgeted figure beside its ratio to the floor of the same run."""

from __future__ import annotations

from benchmarks.footprint import _window_text, ratio
from benchmarks.report import Result, budget_line


def test_a_budget_with_a_floor_prints_the_ratio_beside_the_figure() -> None:
    result = Result("footprint", "t", "m", quick=False, metrics={"rss": 45.2})
    budget = result.budget("resident memory", "rss", 60, "MB", ratio=1.5,
                           floor="bare ocpp charge point: 30.5 MB")
    assert budget_line(budget.to_json()) == (
        "PASS  resident memory: 45.2 MB, 1.5x the floor [bare ocpp charge point: 30.5 MB] "
        "(budget <= 60 MB)")
    plain = result.budget("resident memory", "rss", 40, "MB")
    assert budget_line(plain.to_json()) == "FAIL  resident memory: 45.2 MB (budget <= 40 MB)"


def test_each_footprint_window_shows_its_ratios_to_the_floor() -> None:
    agent = {"rss_mb": 45.0, "peak_rss_mb": 45.5, "cpu_percent": 0.133,
             "cpu_seconds_per_hour": 4.8, "threads": 8}
    floor = {"rss_mb": 30.0, "cpu_percent": 0.0}
    text = _window_text(agent, floor, tick=0.022)
    assert text.startswith("RSS 45.0 MB (1.5x), peak 45.5 MB, CPU 0.13 % (6.0x)")
    assert ratio(0.133, 0.0, 0.022) == 6.0  # a floor below one tick counts as one tick
