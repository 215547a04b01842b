"""The simulated MCP3008's answer to the words gpiozero's MCP3008 sends."""

from __future__ import annotations

import pytest

from evsim.mcp3008 import mcp3008_answer


@pytest.mark.parametrize("channel", [0, 5, 7])
def test_the_answer_carries_the_selected_channels_10_bit_result(channel: int) -> None:
    levels = {channel: 0.75}
    tx = [0x01, 0x80 | channel << 4, 0x00]  # gpiozero's MCP3008: start, single-ended, channel
    rx = mcp3008_answer(tx, lambda ch: levels.get(ch, 0.0))
    assert len(rx) == 3
    assert ((rx[1] & 0x03) << 8 | rx[2]) == round(0.75 * 1023)


def test_a_differential_read_answers_zero() -> None:
    assert mcp3008_answer([0x01, 0x00, 0x00], lambda ch: 1.0) == [0, 0, 0]
