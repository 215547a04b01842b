"""Security events: journaled like transaction messages (kept offline, across a crash, sent
after registration, in order) and kept in the local security log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.cli import main
from agent.core import messages as msg
from agent.security_log import SecurityLog
from tests.unit.agent.test_outbox import T0, Rig, idle, start, until


def event(kind: str) -> msg.SecurityEventRaised:
    return msg.SecurityEventRaised(kind, T0, "detail")


async def test_events_raised_offline_survive_a_crash_and_go_out_in_order(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.outbox.put("e1", event("StartupOfTheDevice"))  # offline: kept, not failed
    rig.outbox.put("t1", start())
    rig.outbox.put("e2", event("InvalidCentralSystemCertificate"))
    assert rig.failed() == []
    await rig.crash()
    after = Rig(tmp_path)
    after.outbox.set_link(True)
    await idle()
    assert after.csms.calls == []  # not before registration (the gate)
    after.outbox.set_gate(True)
    await until(lambda: len(after.csms.calls) == 3)
    assert after.csms.refs() == ["e1", "t1", "e2"]
    assert after.csms.calls[0].req == event("StartupOfTheDevice")
    await until(lambda: after.outbox.backlog == 0)


def test_the_security_log_is_private_and_readable_with_the_cli(tmp_path: Path,
                                                               capsys: object) -> None:
    log = SecurityLog(tmp_path, secrets=["hunter2-secret"])
    log.append(T0, "ResetOrReboot", True, "by hunter2-secret")
    log.append(T0, "InvalidCentralSystemCertificate", False, "x" * 400)
    assert os.stat(log.path).st_mode & 0o777 == 0o600
    records = list(log.records())
    assert records[0].info == "by ***" and len(records[1].info or "") == 255
    assert main(["log", "--security", "--state-dir", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "ResetOrReboot", "InvalidCentralSystemCertificate"]
    assert main(["log", "--security", "--state-dir", str(tmp_path / "none")]) == 66


def test_the_security_log_rolls_over_and_keeps_one_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A04.FR.04: "in a rolling format"."""
    monkeypatch.setattr("agent.security_log.MAX_BYTES", 400)
    log = SecurityLog(tmp_path)
    for n in range(30):
        log.append(T0, "ReconfigurationOfSecurityParameters", False, f"change {n}")
    kept = [r.info for r in log.records()]
    assert kept == [f"change {n}" for n in range(30 - len(kept), 30)]  # the newest, in order
    assert 2 <= len(kept) < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "security-log.jsonl", "security-log.jsonl.1"]
