"""The dashboard's pieces without a server: the CSV export, the message-log search, the event
stream's tickets, the masked configuration, ``api.bench_url``'s rule and the shipped files."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.api import dashboard
from agent.api.auth import TICKET_SECONDS, StreamTickets
from agent.api.export import CSV_COLUMNS, csv_lines, search_frames
from agent.app import _shown_secrets
from agent.config import ConfigError, parse_config
from agent.frame_log import FrameRecord
from agent.maintenance.diagnostics import masked_config

ROOT = Path(__file__).resolve().parents[4]
SIM = (ROOT / "examples" / "sim.toml").read_text()
CONTROL, READ = "control-secret-0123456789", "read-secret-abcdefghijkl"
CSMS_PASSWORD = "csms-pass-9876"


def view(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sessionId": "s1", "sessionStatus": "COMPLETE", "evseId": "DE*EVA*E0001*1",
        "connectorId": 1, "idTag": "0A1B2C3D", "mode": "api",
        "createdAt": "2026-12-07T05:00:00+00:00", "startTime": "2026-12-07T05:00:01+00:00",
        "duration": "PT1M", "energy": {"unit": "WH", "value": 250},
        "transactionId": 7, "stopReason": "Remote", "failure": None,
        "sequence": 3, "amount": None}
    return {**base, **changes}


def test_the_csv_has_a_header_and_a_row_per_session() -> None:
    text = "".join(csv_lines([view(), view(sessionId="s2", energy=None, failure="blocked",
                                        sessionStatus="FAILED")]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["sessionId"], r["energyWh"], r["failure"]) for r in rows] == [
        ("s1", "250", ""), ("s2", "", "blocked")]
    assert text.count("\r\n") == 3


@pytest.mark.parametrize("tag", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)"])
def test_a_token_a_spreadsheet_would_run_is_quoted(tag: str) -> None:
    row = next(csv.DictReader(io.StringIO("".join(csv_lines([view(idTag=tag)])))))
    assert row["idTag"] == "'" + tag


def record(action: str, payload: object, second: int) -> FrameRecord:
    return FrameRecord(datetime(2026, 12, 7, 5, 0, second, tzinfo=UTC), "out", "CALL",
                       unique_id=str(second), action=action, payload=payload)


def test_the_search_finds_text_in_payloads_newest_first_within_the_limit() -> None:
    records = [record("Authorize", {"idTag": "CAFE0001"}, 1),
               record("Heartbeat", {}, 2),
               record("Authorize", {"idTag": "cafe0002"}, 3),
               record("StartTransaction", {"idTag": "CAFE0003"}, 4)]
    found = search_frames(records, "Cafe", 2)
    assert [r["payload"]["idTag"] for r in found] == ["CAFE0003", "cafe0002"]
    assert "StartTransaction" in found[0]["line"]
    assert len(search_frames(records, None, 10)) == 4
    assert search_frames(records, "nothing-like-this", 10) == []


def test_a_ticket_opens_the_stream_with_its_scope_until_it_expires() -> None:
    tickets = StreamTickets()
    ticket = tickets.issue("read", 1000.0)
    assert tickets.scope_of(ticket, 1000.0) == "read"
    assert tickets.scope_of(ticket, 1000.0 + TICKET_SECONDS) == "read"
    assert tickets.scope_of(ticket, 1001.0 + TICKET_SECONDS) is None


def test_a_forged_or_foreign_ticket_is_refused() -> None:
    tickets = StreamTickets()
    scope, expiry, mac = tickets.issue("read", 1000.0).split(".")
    assert tickets.scope_of(f"control.{expiry}.{mac}", 1000.0) is None
    assert tickets.scope_of(f"{scope}.{int(expiry) + 9}.{mac}", 1000.0) is None
    assert StreamTickets().scope_of(f"{scope}.{expiry}.{mac}", 1000.0) is None  # a restart
    assert tickets.scope_of("", 1000.0) is None
    assert tickets.scope_of("read..", 1000.0) is None


def sim_config(extra_api: str = "", pin_factory: str = "evsim") -> str:
    text = SIM.replace('pin_factory = "evsim"', f'pin_factory = "{pin_factory}"')
    text = text.replace("[csms]\n", f'[csms]\npassword = "{CSMS_PASSWORD}"\nsecurity_profile = 1\n'
                        "allow_unencrypted = true\n", 1)
    return text + f"""
[api]
webhook_url = "http://hook:hook-pass-1@127.0.0.1:9/in?key=hook-query-key"
{extra_api}
[[api.token]]
scope = "control"
secret = "{CONTROL}"
[[api.token]]
scope = "read"
secret = "{READ}"
"""


def test_the_configuration_shown_has_no_secret() -> None:
    config = parse_config(sim_config(), "sim")
    shown = json.dumps(masked_config(config, _shown_secrets(config)))
    for secret in (CSMS_PASSWORD, CONTROL, READ, "hook-pass-1", "hook-query-key"):
        assert secret not in shown
    assert '"scope": "control"' in shown  # the rest is there
    assert "127.0.0.1:9/in" in shown


def test_bench_url_is_for_a_simulated_charger_only() -> None:
    bench = 'bench_url = "http://127.0.0.1:8400"'
    api = parse_config(sim_config(bench), "sim").api
    assert api is not None and api.bench_url == "http://127.0.0.1:8400"
    with pytest.raises(ConfigError, match=r"api\.bench_url"):
        parse_config(sim_config(bench, pin_factory="lgpio"), "real")


def test_the_dashboard_files_come_from_the_package_and_load_nothing_else() -> None:
    files = dashboard.files()
    assert set(files) == {"index.html", "app.js", "style.css"}
    page = files["index.html"].decode()
    assert 'src="app.js"' in page and 'href="style.css"' in page
    for body in files.values():  # no other host, no inline script (the CSP forbids them)
        text = body.decode()
        assert "http://" not in text and "https://" not in text
    assert "<script>" not in page and "style=" not in page
