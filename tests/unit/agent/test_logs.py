"""Logging for journald: priority prefixes, context, quiet frames, masked secrets."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import logs
from agent.logs import ConnectorLogger, RecentProblems, configure, log_context, redact_text

PASSWORD = "s3cret-csms-password"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() changes process-wide logging: put it back after each test."""
    root = logging.getLogger()
    names = ["agent.ocpp", *logs._QUIET_LIBRARIES]
    levels = {name: logging.getLogger(name).level for name in names}
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_console_lines_have_level_and_name_and_no_timestamp() -> None:
    stream = io.StringIO()
    configure("INFO", ocpp_frames=False, stream=stream)
    logging.getLogger("agent.app").info("ready: %d connector(s)", 2)
    logging.getLogger("agent.app").debug("not shown")
    assert lines(stream) == ["INFO agent.app: ready: 2 connector(s)"]


def test_journal_lines_have_the_syslog_priority_on_every_line() -> None:
    stream = io.StringIO()
    configure("DEBUG", ocpp_frames=False, stream=stream, journal=True)
    log = logging.getLogger("agent.x")
    log.critical("c")
    log.error("e")
    log.warning("w")
    log.info("i")
    log.debug("d")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    out = lines(stream)
    assert out[:5] == ["<2>agent.x: c", "<3>agent.x: e", "<4>agent.x: w", "<6>agent.x: i",
                       "<7>agent.x: d"]
    assert out[5] == "<3>agent.x: failed"
    assert len(out) > 6 and all(line.startswith("<3>") for line in out[6:])
    assert out[-1] == "<3>ValueError: boom"


def test_the_prefix_follows_journal_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (tmp_path / "stderr").open("w+") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert logs.journal_attached(stream)
        configure("INFO", ocpp_frames=False, stream=stream)
        logging.getLogger("agent.app").warning("disk full")
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino + 1}")  # inherited
        configure("INFO", ocpp_frames=False, stream=stream)
        logging.getLogger("agent.app").warning("disk full")
        monkeypatch.delenv("JOURNAL_STREAM")
        configure("INFO", ocpp_frames=False, stream=stream)
        logging.getLogger("agent.app").warning("disk full")
        stream.seek(0)
        assert stream.read().splitlines() == [
            "<4>agent.app: disk full", "WARNING agent.app: disk full",
            "WARNING agent.app: disk full"]


def test_configure_again_replaces_its_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("INFO", ocpp_frames=False, stream=first)
    configure("INFO", ocpp_frames=False, stream=second)
    logging.getLogger("agent.app").info("once")
    assert (lines(first), lines(second)) == ([], ["INFO agent.app: once"])


def test_connector_logger_adds_connector_and_transaction() -> None:
    stream = io.StringIO()
    configure("INFO", ocpp_frames=False, stream=stream, journal=True)
    connector = ConnectorLogger(logging.getLogger("agent.runtime"), connector=1)
    connector.info("plugged")
    connector.with_transaction(42).info("charging %s", "04A1B2C3", extra={"reason": "x"})
    logging.getLogger("agent.runtime").info("station-wide")
    assert lines(stream) == [
        "<6>agent.runtime: plugged [connector=1]",
        "<6>agent.runtime: charging 04A1B2C3 [connector=1 tx=42]",
        "<6>agent.runtime: station-wide",
    ]


def test_log_context_applies_inside_the_block_only() -> None:
    stream = io.StringIO()
    configure("INFO", ocpp_frames=False, stream=stream)
    log = logging.getLogger("agent.runtime")
    with log_context(connector=2, transaction=7):
        log.info("meter read failed")
        ConnectorLogger(log, connector=1).info("own context wins")
    log.info("after")
    assert lines(stream) == [
        "INFO agent.runtime: meter read failed [connector=2 tx=7]",
        "INFO agent.runtime: own context wins [connector=1 tx=7]",
        "INFO agent.runtime: after",
    ]


def frame(logger: logging.Logger) -> None:
    logger.info("%s: send %s", "CP1", '[2,"1","Heartbeat",{}]')


def test_frames_stay_off_the_console_unless_asked_for() -> None:
    stream = io.StringIO()
    configure("INFO", ocpp_frames=False, stream=stream)
    ocpp = logging.getLogger("agent.ocpp")
    frame(ocpp)
    ocpp.warning("Received a CALLError")
    assert lines(stream) == ["WARNING agent.ocpp: Received a CALLError"]
    assert ocpp.isEnabledFor(logging.INFO), "the frame log still gets the frames"

    stream = io.StringIO()
    configure("INFO", ocpp_frames=True, stream=stream)
    frame(ocpp)
    assert lines(stream) == ['INFO agent.ocpp: CP1: send [2,"1","Heartbeat",{}]']


def test_a_warning_level_keeps_info_frames_off_the_console() -> None:
    stream = io.StringIO()
    configure("WARNING", ocpp_frames=True, stream=stream)
    ocpp = logging.getLogger("agent.ocpp")
    frame(ocpp)  # the logger passes it (frame log), the handler's level stops it
    assert ocpp.isEnabledFor(logging.INFO)
    assert lines(stream) == []


def test_the_password_is_masked_in_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    configure("INFO", ocpp_frames=True, stream=stream, secrets=[PASSWORD, ""])
    log = logging.getLogger("websockets.client")
    log.warning("> Authorization: Basic Q1AxOnMzY3JldA==")
    logging.getLogger("agent.csms.link").warning("key is %s", PASSWORD)
    try:
        raise RuntimeError(f"refused {PASSWORD}")
    except RuntimeError:
        logging.getLogger("agent.app").exception("link failed")
    text = stream.getvalue()
    assert PASSWORD not in text
    assert "Q1AxOnMzY3JldA" not in text
    assert "WARNING websockets.client: > Authorization: Basic ***" in text
    assert "WARNING agent.csms.link: key is ***" in text
    assert "RuntimeError: refused ***" in text


def test_redact_text() -> None:
    assert redact_text("Basic dXNlcjpwYXNzd29yZA== and pw", ["pw"]) == "Basic *** and ***"
    assert redact_text("{'Authorization': 'Basic abc'}") == "{'Authorization': 'Basic ***'}"
    assert redact_text("authorization=basic x") == "authorization=basic ***"
    assert redact_text("a basic idea; Basic configuration") == "a basic idea; Basic configuration"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure("LOUD", ocpp_frames=False, stream=io.StringIO())


def test_recent_problems_keeps_the_last_warnings_and_errors() -> None:
    problems = RecentProblems(size=2, secrets=[PASSWORD])
    log = logging.getLogger("agent.test-problems")
    log.addHandler(problems)
    try:
        log.warning("first")
        log.info("not a problem")
        ConnectorLogger(log, connector=1).error("meter: no answer")
        log.error("refused with %s", PASSWORD)
    finally:
        log.removeHandler(problems)
    entries = problems.entries()
    assert [(e["level"], e["connector"], e["text"]) for e in entries] == [
        ("ERROR", 1, "agent.test-problems: meter: no answer"),
        ("ERROR", None, "agent.test-problems: refused with ***"),
    ]
    assert entries[0]["time"].endswith("Z")


def test_a_password_in_a_url_is_masked() -> None:
    text = 'UpdateFirmware {"location": "ftp://tech:pa55word@files.example/r.tar.gz"}'
    assert redact_text(text) == 'UpdateFirmware {"location": "ftp://tech:***@files.example/r.tar.gz"}'
    assert redact_text("http://user@host/x") == "http://user@host/x"
