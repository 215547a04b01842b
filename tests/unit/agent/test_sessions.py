"""Session records (agent.sessions), their statuses fed by the core's effects; the schema 3
upgrade; the [api] configuration and its tokens file."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.api.auth import TokenFileError, load_tokens
from agent.config import ConfigError, parse_config
from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.types import StopReason, TxTrigger
from agent.sessions import (
    FOLLOWS,
    WAIT_TO_START_SECONDS,
    Mode,
    Saved,
    Session,
    Sessions,
    Status,
    Timer,
    Withdraw,
    from_record,
    may_follow,
    to_record,
)
from agent.store import MIGRATIONS, Store

from .test_journal_migration import DUMP  # the previous release's store

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SIM = Path(__file__).resolve().parents[3] / "examples" / "sim.toml"


def decided(accepted: bool, reason: str = "accepted") -> fx.AuthorizationDecided:
    return fx.AuthorizationDecided(1, "TAG", "api", accepted, "csms",
                                   "Accepted" if accepted else "Invalid", reason)


def started(tx_ref: int = 7, trigger: TxTrigger = TxTrigger.AUTHORIZED) -> fx.Send:
    return fx.Send("s1", msg.TransactionStarted(tx_ref, 1, "TAG", 1000, T0, trigger=trigger))


def statuses(effects: list[Saved | Timer]) -> list[Status]:
    return [e.session.status for e in effects if isinstance(e, Saved)]


def test_an_api_session_goes_through_every_status_to_complete() -> None:
    sessions = Sessions({1: "E*1"})
    session = sessions.create("a", 1, "TAG", T0)
    assert Timer("wait:a", WAIT_TO_START_SECONDS) in sessions.requested(session, T0)
    sessions.observe(ev.CallAnswered("r", msg.Ack()), [decided(True)], T0, "x")
    assert session.authorized and sessions.start_blocked(1, T0 + timedelta(seconds=59))
    assert not sessions.start_blocked(1, T0 + timedelta(seconds=60))
    out = sessions.observe(ev.PilotChanged.__new__(ev.PilotChanged), [started()], T0, "x")
    assert statuses(out) == [Status.STARTED] and Timer("wait:a", None) in out
    sessions.stop_requested(session, True, T0)
    assert session.status is Status.WAITING_TO_STOP
    end = msg.TransactionEnded(7, 1, 1800, T0, StopReason.REMOTE)
    sessions.observe(ev.CsmsCommand(msg.CsmsReset(False)), [fx.Send("s2", end)], T0, "x")
    assert (session.status, session.energy_wh, session.stop_reason) == (
        Status.STOPPED, 800, "Remote")
    out = sessions.observe(ev.CallAnswered("s2", msg.TransactionEndResult()), [], T0, "x")
    assert statuses(out) == [Status.COMPLETE]
    assert [e.event for e in out if isinstance(e, Saved)] == ["SESSION_COMPLETE"]
    assert session.seq == 3  # started, stopped, complete


def test_a_refused_token_fails_the_session_and_two_minutes_of_waiting_too() -> None:
    sessions = Sessions({1: "E*1"})
    refused = sessions.create("a", 1, "TAG", T0)
    sessions.requested(refused, T0)
    sessions.observe(ev.CallAnswered("r", msg.Ack()), [decided(False, "unknown_card")], T0, "")
    assert (refused.status, refused.failure) == (Status.FAILED, "unknown_card")
    waiting = sessions.create("b", 1, "TAG", T0)
    sessions.requested(waiting, T0)
    assert statuses(sessions.timer_fired("wait:b", T0)) == [Status.FAILED]
    assert waiting.failure == "start_timeout"
    assert sessions.timer_fired("wait:b", T0) == []  # a late timer changes nothing


def test_card_and_remote_starts_get_their_own_records() -> None:
    sessions = Sessions({1: "E*1"})
    sessions.observe(ev.TokenPresented("TAG"), [started(1)], T0, "card")
    sessions.observe(ev.TokenPresented("TAG"), [started(2, TxTrigger.REMOTE_START)], T0, "rem")
    assert (sessions.sessions["card"].mode, sessions.sessions["rem"].mode) == (
        Mode.LOCAL, Mode.REMOTE)


@pytest.mark.parametrize(("purpose", "mode"), [("connector", Mode.LOCAL),
                                                ("remote", Mode.REMOTE)])
def test_a_card_the_charge_box_refuses_is_a_failed_record_with_a_start_notification(
    purpose: str, mode: Mode
) -> None:
    sessions = Sessions({1: "E*1"})
    refusal = fx.AuthorizationDecided(1, "CARD", purpose, False, "local_list", "Blocked",
                                      "blocked")
    out = sessions.observe(ev.TokenPresented("CARD"), [refusal], T0, "new-id")
    (saved,) = [e for e in out if isinstance(e, Saved)][-1:]
    assert (saved.session.id, saved.session.mode, saved.session.status) == (
        "new-id", mode, Status.FAILED)
    assert (saved.session.failure, saved.session.authorization_status) == ("blocked", "Blocked")
    assert (saved.event, saved.start) == ("SESSION_FAILED", False)
    assert sessions.sessions == {}  # finished: in the store only
    accepted = fx.AuthorizationDecided(1, "CARD", purpose, True, "csms", "Accepted", "accepted")
    stop = fx.AuthorizationDecided(1, "CARD", "parent_stop", False, "csms", "Invalid", "x")
    assert sessions.observe(ev.TokenPresented("CARD"), [accepted, stop], T0, "n2") == []


def test_recovery_fails_the_waiting_and_stops_the_started() -> None:
    sessions = Sessions({1: "E*1", 2: "E*2"})
    waiting = sessions.create("a", 2, "OTHER", T0)
    sessions.requested(waiting, T0)
    sessions.observe(ev.TokenPresented("TAG"), [started(3)], T0, "b")
    sessions.recover({3: (1500, "PowerLoss", T0, False)}, {3: "stop-ref"}, T0)
    assert waiting.status is Status.FAILED
    charging = sessions.sessions["b"]
    assert (charging.status, charging.stop_reason, charging.stop_ref) == (
        Status.STOPPED, "PowerLoss", "stop-ref")


def test_finished_records_leave_memory_and_a_restart_loads_only_the_unfinished(
    tmp_path: Path
) -> None:
    sessions = Sessions({1: "E*1", 2: "E*2"})
    for n in range(50):  # a history of refused starts
        refused = sessions.create(f"r{n}", 1, "TAG", T0)
        sessions.requested(refused, T0)
        out = sessions.observe(ev.CallAnswered("r", msg.Ack()), [decided(False)], T0, "")
        assert statuses(out) == [Status.FAILED]
    sessions.observe(ev.TokenPresented("TAG"), [started(3)], T0, "charging")
    assert list(sessions.sessions) == ["charging"]
    store = Store.open(tmp_path)
    for n, status in enumerate(Status):
        record = dataclasses.replace(sessions.sessions["charging"], id=f"s{n}", status=status)
        store.session_put(record.id, record.id_tag, status.value, T0, json.dumps(
            to_record(record)))
    unfinished = [from_record(json.loads(b)).status
                  for b in store.session_bodies(unfinished=True)]
    assert sorted(unfinished) == sorted(set(Status) - {Status.COMPLETE, Status.FAILED})
    assert store.session_body("s0") is not None and store.session_body("nope") is None
    store.close()


def test_a_record_survives_its_json() -> None:
    sessions = Sessions({1: "E*1"})
    session = sessions.create("a", 1, "TAG", T0)
    assert from_record(json.loads(json.dumps(to_record(session)))) == session


def test_schema_3_upgrades_the_previous_releases_store(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "evse-agent.db")
    db.executescript(DUMP.read_text())
    db.close()
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 5
        assert store.session_bodies() == [] and len(store.journal_rows()) > 0
        store.session_put("a", "TAG", "STARTED", T0, "{}")
        store.authorization_put(T0, "TAG", 1, "api", False, "csms", "Blocked", "blocked")
        assert store.session_count(id_tag="tag", status="STARTED") == 1
        assert store.authorization_rows(id_tag="TAG")[0]["reason"] == "blocked"


API = '\n[api]\nlisten = "{listen}"\n'
TOKEN = '[[api.token]]\nscope = "{scope}"\nsecret = "0123456789abcdef"\n'


def test_api_config_names_the_key_and_the_allowed_values() -> None:
    base = SIM.read_text()
    with pytest.raises(ConfigError) as bad:
        parse_config(base + API.format(listen="nowhere") + TOKEN.format(scope="admin"))
    text = str(bad.value)
    assert "api.listen: " in text and "host:port" in text
    assert "api.token[1].scope" in text and "read, control" in text
    with pytest.raises(ConfigError, match="api: no token"):
        parse_config(base + API.format(listen="127.0.0.1:8080"))
    config = parse_config(base + API.format(listen="127.0.0.1:9") + TOKEN.format(scope="read"))
    assert config.api is not None and (config.api.host, config.api.port) == ("127.0.0.1", 9)
    assert "0123456789abcdef" not in repr(config)
    assert parse_config(base).api is None  # off unless configured


def test_a_tokens_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("control 0123456789abcdefXYZ\n# a comment\nread 0123456789abcdefRRR\n")
    text = SIM.read_text() + API.format(listen="127.0.0.1:9") + f'tokens_file = "{path}"\n'
    config = parse_config(text)
    assert config.api is not None
    os.chmod(path, 0o644)
    with pytest.raises(TokenFileError, match="readable by others"):
        load_tokens(config.api)
    os.chmod(path, 0o600)
    tokens = load_tokens(config.api)
    assert tokens.scope_of("0123456789abcdefXYZ") == "control"
    assert tokens.scope_of("0123456789abcdefRRR") == "read"
    assert tokens.scope_of("0123456789abcdef") is None
    path.write_text("admin 0123456789abcdefXYZ\n")
    with pytest.raises(TokenFileError, match="line 1"):
        load_tokens(config.api)


def test_which_status_may_follow_which() -> None:
    path = [Status.CREATED, Status.WAITING_TO_START, Status.STARTED, Status.WAITING_TO_STOP,
            Status.STOPPED, Status.COMPLETE]
    assert all(may_follow(a, b) for a, b in itertools.pairwise(path))
    assert may_follow(Status.FAILED, Status.STARTED)  # the charger began it after all
    assert may_follow(Status.STOP_FAILED, Status.WAITING_TO_STOP)  # a stop may be retried
    assert not any(may_follow(Status.COMPLETE, s) for s in Status)
    assert not may_follow(Status.FAILED, Status.COMPLETE)
    assert not may_follow(Status.STOPPED, Status.STARTED)
    assert set(FOLLOWS) == set(Status)


def waiting_with_token(sessions: Sessions, window: float = 180.0) -> Session:
    """An API start whose token the core accepted and holds ``window`` s for the plug-in."""
    session = sessions.create("a", 1, "TAG", T0)
    sessions.requested(session, T0)
    sessions.observe(ev.CallAnswered("r", msg.Ack()),
                     [decided(True), fx.StartTimer("connection:1", window)], T0, "x")
    return session


def plug_in(sessions: Sessions, at: datetime, id_tag: str = "TAG") -> list[Saved | Timer]:
    begun = fx.Send("s1", msg.TransactionStarted(7, 1, id_tag, 1000, at,
                                                 trigger=TxTrigger.CABLE_PLUGGED_IN))
    return sessions.observe(ev.PilotChanged.__new__(ev.PilotChanged),
                            [fx.CancelTimer("connection:1"), begun], at, "new")


def test_a_start_failed_after_two_minutes_moves_on_when_the_core_begins_it() -> None:
    sessions = Sessions({1: "E*1"})
    waiting_with_token(sessions)  # ConnectionTimeOut 180 s > the 2 minutes
    waited = T0 + timedelta(seconds=WAIT_TO_START_SECONDS)
    assert statuses(sessions.timer_fired("wait:a", waited)) == [Status.FAILED]
    assert sessions.sessions == {}  # finished as far as memory goes
    out = plug_in(sessions, waited + timedelta(seconds=30))
    (saved,) = [e for e in out if isinstance(e, Saved)]
    assert (saved.session.id, saved.session.mode, saved.session.status, saved.event) == (
        "a", Mode.API, Status.STARTED, "SESSION_STARTED")
    assert (saved.session.seq, saved.session.failure, saved.session.tx_ref) == (2, None, 7)
    assert list(sessions.sessions) == ["a"]  # no second session
    answer = msg.TransactionStartResult(None, transaction_id=52)
    out = sessions.observe(ev.CallAnswered("s1", answer), [], waited, "x")
    assert [(e.start, e.session.transaction_id) for e in out if isinstance(e, Saved)] == [
        (True, 52)]  # the accepted start notification follows the refused one


@pytest.mark.parametrize("what", ["window_over", "other_tag", "core_dropped_token",
                                  "new_start", "not_plugged_in", "never_accepted"])
def test_a_failed_start_is_not_resumed_outside_its_window(what: str) -> None:
    sessions = Sessions({1: "E*1"})
    if what == "never_accepted":
        session = sessions.create("a", 1, "TAG", T0)
        sessions.requested(session, T0)
    else:
        session = waiting_with_token(sessions, 100.0 if what == "not_plugged_in" else 180.0)
    if what == "not_plugged_in":  # the core's ConnectionTimeOut ran out first
        plugged_by = T0 + timedelta(seconds=100)
        sessions.observe(ev.TimerFired("connection:1"), [], plugged_by, "x")
        assert (session.status, session.failure) == (Status.FAILED, "not_plugged_in")
    else:
        sessions.timer_fired("wait:a", T0 + timedelta(seconds=WAIT_TO_START_SECONDS))
    at, tag = T0 + timedelta(seconds=150), "TAG"
    if what == "window_over":
        at = T0 + timedelta(seconds=181)
    elif what == "other_tag":
        tag = "OTHER"
    elif what == "core_dropped_token":
        sessions.observe(ev.TimerFired("connection:1"), [], at, "x")
    elif what == "new_start":
        sessions.requested(sessions.create("b", 1, "TAG", at), at)
    plug_in(sessions, at, tag)
    assert session.status is Status.FAILED
    expected = "b" if what == "new_start" else "new"
    assert [s.id for s in sessions.sessions.values() if s.status is Status.STARTED] == [
        expected]


def test_a_new_start_replaces_a_failed_start_whose_token_the_core_still_holds() -> None:
    """sessions-api.md §2: after 2 minutes in WAITING_TO_START "consider it failed and allow a
    new start"; the core releases the old token first and the old session stays FAILED."""
    sessions = Sessions({1: "E*1"})
    failed = waiting_with_token(sessions)  # ConnectionTimeOut 180 s
    waited = T0 + timedelta(seconds=WAIT_TO_START_SECONDS)
    sessions.timer_fired("wait:a", waited)
    assert sessions.replaceable(1, "tag", waited) is failed  # idTags compared without case
    assert sessions.replaceable(1, "OTHER", waited) is None  # the core holds another token
    assert sessions.replaceable(1, None, waited) is None  # ... or none
    assert sessions.replaceable(1, "TAG", T0 + timedelta(seconds=181)) is None
    new = sessions.create("b", 1, "OTHER", waited)
    out = sessions.requested(new, waited)
    assert [e if isinstance(e, Withdraw) else e.session.status
            for e in out if not isinstance(e, Timer)] == [
        Status.CREATED, Withdraw(1, "TAG"), Status.WAITING_TO_START]  # released first
    sessions.observe(ev.StartWithdrawn("TAG", 1), [fx.CancelTimer("connection:1")], waited,
                     "x")  # the core released it
    assert sessions.replaceable(1, "TAG", waited) is None
    plug_in(sessions, waited + timedelta(seconds=5), "OTHER")
    assert (failed.status, new.status) == (Status.FAILED, Status.STARTED)


def test_a_start_refused_before_the_core_leaves_the_failed_one_resumable() -> None:
    """Only a start handed to the core replaces the token it holds; a refused one (409, a
    pre-authorization hook's answer) does not, and the plug-in still resumes the first."""
    sessions = Sessions({1: "E*1"})
    failed = waiting_with_token(sessions)
    waited = T0 + timedelta(seconds=WAIT_TO_START_SECONDS)
    sessions.timer_fired("wait:a", waited)
    refused = sessions.create("b", 1, "OTHER", waited)
    assert not any(isinstance(e, Withdraw) for e in sessions.fail(refused, "payment", waited))
    plug_in(sessions, waited + timedelta(seconds=5))
    assert (failed.status, refused.status) == (Status.STARTED, Status.FAILED)


def test_a_plug_in_before_the_core_released_the_token_resumes_the_failed_start() -> None:
    """The EV came first: the core began the FAILED start's transaction before it saw the
    withdrawal, so that session resumes and the new one does not take its transaction."""
    sessions = Sessions({1: "E*1"})
    failed = waiting_with_token(sessions)
    waited = T0 + timedelta(seconds=WAIT_TO_START_SECONDS)
    sessions.timer_fired("wait:a", waited)
    new = sessions.create("b", 1, "OTHER", waited)
    assert Withdraw(1, "TAG") in sessions.requested(new, waited)
    plug_in(sessions, waited + timedelta(seconds=1))  # the transaction is the held token's
    sessions.observe(ev.StartWithdrawn("TAG", 1), [], waited, "x")  # nothing left to release
    assert (failed.status, failed.tx_ref, new.status) == (
        Status.STARTED, 7, Status.WAITING_TO_START)
