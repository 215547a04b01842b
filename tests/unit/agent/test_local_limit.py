"""The local limit's request words (``evse-agent limit``), agent/local_limit.py."""

from __future__ import annotations

import pytest

from agent.local_limit import LimitError, parse_words


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
