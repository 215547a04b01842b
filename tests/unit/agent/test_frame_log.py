"""The OCPP message log: frames from the real library, rotation, redaction, queries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from agent import cli
from agent.core import messages as msg
from agent.core.types import StopReason
from agent.csms.v16 import ChargePoint16
from agent.frame_log import (
    CALL,
    CALLERROR,
    CALLRESULT,
    EVENT,
    FILE_NAME,
    IN,
    OUT,
    UNPARSED,
    FrameLog,
    FrameParser,
    FrameRecord,
    FrameStore,
    decision_record,
    format_record,
    redact_payload,
    with_decisions,
)

KEY = "0123456789abcdef0123456789abcdef"  # an AuthorizationKey
PASSWORD = "s3cret-csms-password"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


# --- an OCPP 1.6 pair over an in-memory connection ----------------------------------------


class Pipe:
    """One end of an in-memory WebSocket: what one side sends, the other receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.peer: Pipe | None = None

    async def send(self, text: str) -> None:
        assert self.peer is not None
        await self.peer.inbox.put(text)

    async def recv(self) -> str:
        return await self.inbox.get()


class Csms(ChargePoint):  # type: ignore[misc]
    """A CSMS that blocks the card BLOCKED1 and opens transaction 42."""

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        status = "Blocked" if id_tag == "BLOCKED1" else "Accepted"
        return call_result.Authorize(id_tag_info={"status": status})

    @on(Action.start_transaction)
    def on_start(self, **_: Any) -> Any:
        return call_result.StartTransaction(transaction_id=42, id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    def on_stop(self, **_: Any) -> Any:
        return call_result.StopTransaction()


def commands(request: msg.CsmsRequest) -> msg.CsmsResponse:
    if isinstance(request, msg.CsmsGetConfiguration):
        entries = (msg.ConfigurationEntry("AuthorizationKey", KEY, False),
                   msg.ConfigurationEntry("HeartbeatInterval", "300", False))
        return msg.GetConfigurationResult(entries)
    assert isinstance(request, msg.CsmsChangeConfiguration)
    return msg.ChangeConfigurationResult("Accepted")


@pytest.fixture
def frames(tmp_path: Path) -> Iterator[FrameLog]:
    handler = FrameLog(FrameStore(tmp_path), secrets=[PASSWORD], flush_interval=0.05)
    handler.attach()
    yield handler
    handler.close()


async def test_frames_of_a_real_session_are_recorded(frames: FrameLog, tmp_path: Path) -> None:
    cp_end, csms_end = Pipe(), Pipe()
    cp_end.peer, csms_end.peer = csms_end, cp_end
    charger = ChargePoint16("CP1", cp_end, commands, response_timeout=5)
    csms = Csms("CP1", csms_end)
    tasks = [asyncio.create_task(charger.start()), asyncio.create_task(csms.start())]
    try:
        now = datetime.now(UTC)
        await charger.send(msg.AuthorizationRequest("BLOCKED1"), "a-1")
        await charger.send(msg.TransactionStarted(1, 1, "04A1B2C3", 1200, now), "s-1")
        await charger.send(msg.TransactionEnded(1, 1, 1900, now, StopReason.LOCAL), "e-1",
                           transaction_id=42)
        await csms.call(call.ChangeConfiguration(key="AuthorizationKey", value=KEY))
        await csms.call(call.GetConfiguration())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    frames.close()

    text = "".join(p.read_text() for p in FrameStore(tmp_path).files())
    assert KEY not in text
    records = FrameStore(tmp_path).query()
    assert [(r.direction, r.kind, r.action) for r in records] == [
        (OUT, CALL, "Authorize"), (IN, CALLRESULT, "Authorize"),
        (OUT, CALL, "StartTransaction"), (IN, CALLRESULT, "StartTransaction"),
        (OUT, CALL, "StopTransaction"), (IN, CALLRESULT, "StopTransaction"),
        (IN, CALL, "ChangeConfiguration"), (OUT, CALLRESULT, "ChangeConfiguration"),
        (IN, CALL, "GetConfiguration"), (OUT, CALLRESULT, "GetConfiguration"),
    ]
    refused = FrameStore(tmp_path).query(id_tag="blocked1", action="Authorize")
    assert [r.kind for r in refused] == [CALL, CALLRESULT]
    assert refused[1].payload == {"idTagInfo": {"status": "Blocked"}}
    assert refused[0].unique_id == refused[1].unique_id == "a-1"
    session = FrameStore(tmp_path).query(id_tag="04A1B2C3")
    assert [(r.action, r.connector_id) for r in session] == [("StartTransaction", 1)] * 2 + [
        ("StopTransaction", 1)] * 2  # StopTransaction tied to its connector by transactionId
    assert session[1].transaction_id == 42
    change, answer = FrameStore(tmp_path).query(action="ChangeConfiguration")
    assert change.payload == {"key": "AuthorizationKey", "value": "***"}
    assert answer.payload == {"status": "Accepted"}
    get = FrameStore(tmp_path).query(action="GetConfiguration")[1]
    values = {e["key"]: e.get("value") for e in get.payload["configurationKey"]}
    assert values == {"AuthorizationKey": "***", "HeartbeatInterval": "300"}


# --- records emitted exactly as the library does -------------------------------------------


def emit(direction: str, frame: Any) -> None:
    """Log a frame the way ocpp/charge_point.py does (``_send`` / ``start``)."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    logger = logging.getLogger("agent.ocpp")
    if direction == OUT:
        logger.info("%s: send %s", "CP1", text)
    else:
        logger.info("%s: receive message %s", "CP1", text)


def test_other_records_of_the_library_are_not_frames(frames: FrameLog) -> None:
    logging.getLogger("agent.ocpp").warning("Received a CALLError: %s'", "[4,\"x\"]")
    logging.getLogger("agent.ocpp").error("Ignoring response with unknown unique id: %s", "y")
    emit(OUT, [2, "h1", "Heartbeat", {}])
    assert [r.action for r in frames.query()] == ["Heartbeat"]


def test_attach_lowers_a_quiet_logger_to_info(tmp_path: Path) -> None:
    logger = logging.getLogger("agent.ocpp.quiet-test")
    logger.setLevel(logging.WARNING)
    handler = FrameLog(FrameStore(tmp_path)).attach(logger)
    try:
        logger.info("%s: send %s", "CP1", '[2,"h1","Heartbeat",{}]')
        assert len(handler.query()) == 1
    finally:
        handler.close()
    assert handler not in logger.handlers


def test_call_errors_unparsed_frames_and_events(frames: FrameLog) -> None:
    emit(IN, [2, "c1", "Reset", {"type": "Hard"}])
    emit(OUT, [4, "c1", "NotSupported", "no resets here", {}])
    emit(IN, "this is {not json")
    frames.record_event("link down: connection lost")
    records = frames.query()
    assert [(r.kind, r.action) for r in records] == [
        (CALL, "Reset"), (CALLERROR, "Reset"), (UNPARSED, None), (EVENT, None)]
    assert records[1].payload == {"errorCode": "NotSupported",
                                  "errorDescription": "no resets here", "errorDetails": {}}
    assert records[2].text == "this is {not json"
    assert records[3].text == "link down: connection lost"


def test_answers_take_the_action_of_their_call_per_direction() -> None:
    parser = FrameParser()
    parser.parse(OUT, '[2,"1","Heartbeat",{}]', T0)
    parser.parse(IN, '[2,"1","TriggerMessage",{"requestedMessage":"Heartbeat"}]', T0)
    ours = parser.parse(OUT, '[3,"1",{"status":"Accepted"}]', T0)
    theirs = parser.parse(IN, '[3,"1",{"currentTime":"2024-05-01T10:00:00Z"}]', T0)
    stray = parser.parse(IN, '[3,"nope",{}]', T0)
    assert (ours.action, theirs.action, stray.action) == ("TriggerMessage", "Heartbeat", None)


# --- redaction ---------------------------------------------------------------------------------


def test_secrets_are_masked_in_payloads_and_text() -> None:
    payload = {
        "key": "AuthorizationKey", "value": KEY,
        "configurationKey": [{"key": "authorizationkey", "readonly": False, "value": KEY},
                             {"key": "AuthorizationKey", "readonly": False}],
        "password": "hunter22", "data": f"echo {PASSWORD} and Authorization: Basic Q1AxOnNlY3I=",
        "setVariableData": [{"variable": {"name": "BasicAuthPassword"}, "attributeValue": "x1"}],
    }
    masked = redact_payload(payload, [PASSWORD])
    assert masked == {
        "key": "AuthorizationKey", "value": "***",
        "configurationKey": [{"key": "authorizationkey", "readonly": False, "value": "***"},
                             {"key": "AuthorizationKey", "readonly": False}],
        "password": "***", "data": "echo *** and Authorization: Basic ***",
        "setVariableData": [{"variable": {"name": "BasicAuthPassword"}, "attributeValue": "***"}],
    }


def test_an_unparsed_frame_and_an_event_never_keep_the_password(frames: FrameLog,
                                                                tmp_path: Path) -> None:
    emit(IN, f"garbage with {PASSWORD}")
    frames.record_event(f"link: headers Authorization: Basic Q1AxOn{PASSWORD}")
    frames.record_event(f"password is {PASSWORD}")
    frames.close()
    text = (tmp_path / FILE_NAME).read_text()
    assert PASSWORD not in text
    assert "Q1AxOn" not in text


# --- buffering and rotation --------------------------------------------------------------------


def test_writes_wait_for_the_flush_interval(tmp_path: Path) -> None:
    handler = FrameLog(FrameStore(tmp_path), flush_interval=3600).attach()
    try:
        emit(OUT, [2, "h1", "Heartbeat", {}])
        assert not (tmp_path / FILE_NAME).exists()  # still in memory
        assert len(handler.query()) == 1  # a query writes first
    finally:
        handler.close()


async def test_the_writer_flushes_after_the_interval(tmp_path: Path) -> None:
    handler = FrameLog(FrameStore(tmp_path), flush_interval=0.05).attach()
    try:
        emit(OUT, [2, "h1", "Heartbeat", {}])
        for _ in range(100):
            if (tmp_path / FILE_NAME).exists():
                break
            await asyncio.sleep(0.02)
        assert len(FrameStore(tmp_path).query()) == 1
    finally:
        handler.close()


def test_close_writes_the_buffer_and_detaches(tmp_path: Path) -> None:
    handler = FrameLog(FrameStore(tmp_path), flush_interval=3600).attach()
    emit(OUT, [2, "h1", "Heartbeat", {}])
    handler.close()
    emit(OUT, [2, "h2", "Heartbeat", {}])
    assert [r.unique_id for r in FrameStore(tmp_path).query()] == ["h1"]


def test_a_full_buffer_drops_frames_and_says_so(tmp_path: Path) -> None:
    handler = FrameLog(FrameStore(tmp_path), flush_interval=3600, max_buffer=200).attach()
    try:
        for n in range(10):
            emit(OUT, [2, f"h{n}", "Heartbeat", {}])
        records = handler.query()
    finally:
        handler.close()
    assert records[-1].kind == EVENT
    assert "dropped" in (records[-1].text or "")
    assert 1 <= len(records) - 1 < 10


def _record(n: int, connector: int = 1, id_tag: str = "TAG", action: str = "Authorize",
            time: datetime | None = None) -> str:
    moment = time or T0 + timedelta(seconds=n)
    return FrameRecord(moment, OUT, CALL, f"u{n}", action, connector, id_tag,
                       payload={"n": n}).to_json()


def test_rotation_keeps_max_files_and_queries_across_them_in_order(tmp_path: Path) -> None:
    line = len(_record(10).encode()) + 1
    store = FrameStore(tmp_path, max_bytes=3 * line, max_files=3)
    for n in range(10, 30):  # records of one length: three to a file
        store.append([_record(n)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [FILE_NAME, f"{FILE_NAME}.1", f"{FILE_NAME}.2"]
    assert all(p.stat().st_size <= 3 * line for p in tmp_path.iterdir())
    assert [r.payload["n"] for r in store.query()] == list(range(22, 30))


def test_rotation_with_one_file_starts_over(tmp_path: Path) -> None:
    line = len(_record(0).encode()) + 1
    store = FrameStore(tmp_path, max_bytes=2 * line, max_files=1)
    store.append([_record(n) for n in range(5)])
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]
    assert [r.payload["n"] for r in store.query()] == [4]


def test_rotation_removes_files_beyond_a_lowered_count(tmp_path: Path) -> None:
    line = len(_record(0).encode()) + 1
    FrameStore(tmp_path, max_bytes=line, max_files=5).append([_record(n) for n in range(5)])
    store = FrameStore(tmp_path, max_bytes=line, max_files=2)
    store.append([_record(5)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME, f"{FILE_NAME}.1"]
    assert [r.payload["n"] for r in store.query()] == [4, 5]


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    store = FrameStore(tmp_path)
    store.append([_record(1)])
    with (tmp_path / FILE_NAME).open("a") as file:
        file.write('{"time":"2024-05-01T10:00:0')  # power cut mid-write
    FrameStore(tmp_path).append([_record(2)])  # the agent restarted
    assert [r.payload["n"] for r in store.query()] == [1, 2]


# --- queries -----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FrameStore:
    store = FrameStore(tmp_path)
    store.append([
        _record(0, 1, "AAA", "Authorize"),
        _record(1, 2, "BBB", "Authorize"),
        _record(2, 1, "AAA", "StartTransaction"),
        FrameRecord(T0 + timedelta(seconds=3), EVENT, EVENT, text="link down").to_json(),
        _record(4, 2, "BBB", "StatusNotification"),
    ])
    return store


def ns(records: list[FrameRecord]) -> list[Any]:
    return [r.payload["n"] if r.payload else r.text for r in records]


def test_query_by_time(store: FrameStore) -> None:
    assert ns(store.query(since=T0 + timedelta(seconds=2))) == [2, "link down", 4]
    assert ns(store.query(until=T0 + timedelta(seconds=1))) == [0, 1]
    local = (T0 + timedelta(seconds=1)).astimezone(datetime.now().astimezone().tzinfo)
    assert ns(store.query(since=local, until=local)) == [1]


def test_query_by_connector_and_id_tag_keeps_events(store: FrameStore) -> None:
    assert ns(store.query(connector_id=2)) == [1, "link down", 4]
    assert ns(store.query(id_tag="aaa")) == [0, 2, "link down"]


def test_query_by_action_excludes_events(store: FrameStore) -> None:
    assert ns(store.query(action="authorize")) == [0, 1]
    assert ns(store.query(action=["Authorize", "StatusNotification"], connector_id=2)) == [1, 4]


def test_query_limit_keeps_the_newest(store: FrameStore) -> None:
    assert ns(store.query(limit=2)) == ["link down", 4]
    assert store.query(limit=0) == []


def test_records_round_trip_through_json() -> None:
    record = FrameRecord(T0, IN, CALLRESULT, "u", "Authorize", 1, "TAG", 42,
                         {"idTagInfo": {"status": "Expired"}})
    assert FrameRecord.from_json(record.to_json()) == record


def test_format_record_is_one_readable_line() -> None:
    record = FrameRecord(T0, IN, CALLRESULT, "u", "Authorize", 1, "TAG",
                         payload={"idTagInfo": {"status": "Invalid"}})
    line = format_record(record, utc=True)
    assert line == ("2024-05-01 10:00:00.000Z ← Authorize.conf" + " " * 15
                    + 'connector 1 {"idTagInfo":{"status":"Invalid"}}')
    event = FrameRecord(T0, EVENT, EVENT, text="link up")
    assert format_record(event, utc=True, ascii_only=True) == "2024-05-01 10:00:00.000Z * link up"
    long = FrameRecord(T0, OUT, CALL, "u", "DataTransfer", payload={"data": "x" * 500})
    assert len(format_record(long, utc=True).split()[-1]) == 160
    assert "x" * 500 in format_record(long, utc=True, full=True)


# --- evse-agent log ----------------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    now = datetime.now(UTC)
    FrameStore(tmp_path).append([
        _record(1, 1, "04A1B2C3", "Authorize", now - timedelta(hours=2)),
        FrameRecord(now - timedelta(hours=2), IN, CALLRESULT, "u1", "Authorize", 1, "04A1B2C3",
                    payload={"idTagInfo": {"status": "Expired"}}).to_json(),
        FrameRecord(now - timedelta(minutes=5), EVENT, EVENT, text="link down").to_json(),
        _record(2, 1, "04A1B2C3", "Authorize", now - timedelta(minutes=1)),
        FrameRecord(now - timedelta(minutes=1), IN, CALLRESULT, "u2", "Authorize", 1, "04A1B2C3",
                    payload={"idTagInfo": {"status": "Blocked"}}).to_json(),
        _record(3, 2, "FFFF", "Authorize", now),
    ])
    return tmp_path


def run_log(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = cli.main(["log", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_cli_log_shows_why_a_card_was_refused(state_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_log(capsys, "--state-dir", str(state_dir), "--id-tag", "04a1b2c3",
                           "--action", "Authorize", "--since", "-10m")
    assert code == cli.EXIT_OK
    assert len(out) == 2
    assert "→ Authorize " in out[0] and "connector 1" in out[0]
    assert "← Authorize.conf" in out[1] and '"status":"Blocked"' in out[1]


def test_cli_log_filters_and_formats(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_log(capsys, "--state-dir", str(state_dir))
    assert len(out) == 6 and out[2].endswith("* link down")
    _, out, _ = run_log(capsys, "--state-dir", str(state_dir), "--connector", "2")
    assert [line.split()[3] for line in out] == ["link", "Authorize"]
    _, out, _ = run_log(capsys, "--state-dir", str(state_dir), "--until", "-1h", "--json")
    assert [FrameRecord.from_json(line).payload for line in out] == [
        {"n": 1}, {"idTagInfo": {"status": "Expired"}}]
    _, out, _ = run_log(capsys, "--state-dir", str(state_dir), "--limit", "1", "--utc")
    assert len(out) == 1 and out[0][23] == "Z"


def test_cli_log_reads_the_state_dir_from_the_config(
        state_dir: Path, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "sim.toml"
    config = tmp_path_factory.mktemp("etc") / "config.toml"
    config.write_text(example.read_text().replace('"./state"', json.dumps(str(state_dir))))
    code, out, _ = run_log(capsys, "--config", str(config), "--action", "authorize")
    assert code == cli.EXIT_OK and len(out) == 5


def test_cli_log_without_a_log_or_with_a_bad_time(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_log(capsys, "--state-dir", str(tmp_path))
    assert code == cli.EXIT_NO_INPUT and "no OCPP message log" in err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["log", "--state-dir", str(tmp_path), "--since", "yesterday-ish"])
    assert exit_.value.code == cli.EXIT_USAGE
    assert "is not a time" in capsys.readouterr().err


def test_cli_time_specs() -> None:
    now = datetime.now().astimezone()
    assert abs((now - cli._moment("-10m")) - timedelta(minutes=10)) < timedelta(seconds=5)
    assert abs((now - cli._moment("2h")) - timedelta(hours=2)) < timedelta(seconds=5)
    assert cli._moment("2024-05-01T08:00:00Z") == datetime(2024, 5, 1, 8, tzinfo=UTC)
    local = cli._moment("2024-05-01 10:00")
    assert local.tzinfo is not None and (local.hour, local.minute) == (10, 0)
    assert cli._moment("today").hour == 0


def test_an_authorization_event_shows_for_its_card_only(frames: FrameLog) -> None:
    frames.record_event("link up")
    frames.record_event("authorization CAFE01: refused, source csms, status Invalid, reason "
                        "unknown_card", 1, "CAFE01")
    frames.record_event("authorization BEEF02: accepted", 1, "BEEF02")
    shown = [r.text for r in frames.query(id_tag="cafe01")]
    assert shown == ["link up", "authorization CAFE01: refused, source csms, status Invalid, "
                     "reason unknown_card"]


def test_the_stores_decisions_take_the_place_of_the_logs_copies() -> None:
    t0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    def frame(seconds: float, kind: str = CALL) -> FrameRecord:
        return FrameRecord(t0 + timedelta(seconds=seconds), "out", kind, action="Authorize",
                           id_tag="CAFE01")

    copy = FrameRecord(t0 + timedelta(seconds=2), EVENT, EVENT, id_tag="CAFE01", text="copy")
    link = FrameRecord(t0 + timedelta(seconds=3), EVENT, EVENT, text="link down")
    row = {"at": (t0 + timedelta(seconds=1.5)).isoformat(), "id_tag": "CAFE01",
           "connector_id": 1, "purpose": "connector", "accepted": False, "source": "csms",
           "status": "Invalid", "reason": "unknown_card"}
    decided = decision_record(row)
    assert decided.text == ("authorization CAFE01 (connector, connector 1): refused, source "
                            "csms, status Invalid, reason unknown_card")
    merged = with_decisions([frame(1), copy, link, frame(4)], [decided])
    assert merged == [frame(1), decided, link, frame(4)]
    assert with_decisions([frame(1), link], [decided], limit=2) == [decided, link]
