"""Measuring free disk and RAM for MemoryExhaustion."""

from __future__ import annotations

from pathlib import Path

from agent.security.memory import Free, MemoryWatch, measure


def test_measure_reads_the_disk_and_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        1000000 kB\nMemFree:  1 kB\n"
                       "MemAvailable:     250000 kB\n")
    free = measure(tmp_path, meminfo)
    assert 0.0 <= free.disk <= 1.0
    assert free.ram == 0.25


def test_no_meminfo_means_ram_unknown(tmp_path: Path) -> None:
    assert measure(tmp_path, tmp_path / "missing").ram is None
    (tmp_path / "odd").write_text("MemTotal: 0 kB\n")
    assert measure(tmp_path, tmp_path / "odd").ram is None


def test_a_shortage_counts_once_until_it_has_recovered() -> None:
    watch = MemoryWatch()
    assert watch.check(Free(0.2, 0.2)) is None
    assert watch.check(Free(0.049, 0.2)) == "disk 4.9% free"
    assert watch.check(Free(0.01, 0.2)) is None  # the same shortage
    assert watch.check(Free(0.08, 0.2)) is None  # better, not recovered: still the same
    assert watch.check(Free(0.04, 0.2)) is None
    assert watch.check(Free(0.11, 0.2)) is None  # recovered
    assert watch.check(Free(0.02, 0.01)) == "disk 2.0% free, RAM 1.0% free"
