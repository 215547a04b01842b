"""The local limit's and the phase request's words (``evse-agent limit``, ``evse-agent
phases``), agent/local_limit.py."""

from __future__ import annotations

import pytest

from agent.local_limit import LimitError, parse_phase_words, parse_words


def test_words() -> None:
    assert parse_words(["1", "10"]) == (1, 10.0, "cli")
    assert parse_words(["2", "7.5", "hems"]) == (2, 7.5, "hems")
    assert parse_words(["1", "pause"]) == (1, 0.0, "cli")
    assert parse_words(["1", "resume", "x"]) == (1, None, "x")
    assert parse_words(["1", "CLEAR"]) == (1, None, "cli")


@pytest.mark.parametrize("words", [[], ["1"], ["one", "10"], ["1", "ten"], ["1", "2", "3", "4"]])
def test_bad_words(words: list[str]) -> None:
    with pytest.raises(LimitError):
        parse_words(words)


def test_phase_words() -> None:
    assert parse_phase_words(["1", "1"]) == (1, 1, "cli")
    assert parse_phase_words(["2", "3", "hems"]) == (2, 3, "hems")
    assert parse_phase_words(["1", "AUTO"]) == (1, None, "cli")
    assert parse_phase_words(["1", "clear", "x"]) == (1, None, "x")


@pytest.mark.parametrize(("words", "says"), [
    ([], "expected: CONNECTOR 1|3|auto"), (["1"], "expected"), (["one", "1"], "expected"),
    (["1", "2"], "phases must be 1, 3 or auto, got '2'"), (["1", "three"], "got 'three'"),
    (["1", "3", "x", "y"], "expected")])
def test_bad_phase_words(words: list[str], says: str) -> None:
    with pytest.raises(LimitError, match=says):
        parse_phase_words(words)
