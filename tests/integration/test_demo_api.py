"""``evsim demo --api``: the demo's session is started through the sessions API, and the app
sees its events in order up to COMPLETE (the agent runs as its own process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsim import demo


@pytest.mark.slow
async def test_the_demo_starts_a_session_through_the_api_and_sees_its_events(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = demo.parse_args(["--api", "--charge-seconds", "1", "--quiet-frames",
                            "--workdir", str(tmp_path)])
    assert await demo.run_demo(args) == 0
    out = capsys.readouterr().out
    events = [line.split("[api event] ")[1] for line in out.splitlines() if "[api event]" in line]
    assert events == ["SESSION_STARTED #1 (STARTED)", "SESSION_STOPPED #2 (STOPPED)",
                      "SESSION_COMPLETE #3 (COMPLETE)"]
