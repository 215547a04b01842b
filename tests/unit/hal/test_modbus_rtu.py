"""hal.modbus_rtu: request bytes, answer length and checks, against frames worked by hand,
and against random, truncated and corrupted answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.modbus_rtu import (
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    ExceptionAnswer,
    FrameError,
    answer_length,
    crc16,
    read_request,
    registers,
)


def with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def test_request_matches_the_documented_frame() -> None:
    # hardware.md §2: SDM630 V L1 from id 1
    assert read_request(1, READ_INPUT_REGISTERS, 0, 2) == bytes.fromhex("010400000002 71cb")


def test_request_for_the_evse_board_vehicle_state() -> None:
    frame = read_request(1, READ_HOLDING_REGISTERS, 1002, 1)
    assert frame[:6] == bytes.fromhex("010303ea0001")
    assert crc16(frame) == 0  # a frame followed by its CRC checks to zero


@pytest.mark.parametrize("args", [(1, 6, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126), (1, 3, -1, 1)])
def test_request_rejects_what_it_cannot_frame(args: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        read_request(*args)


def test_answer_gives_its_registers() -> None:
    request = read_request(7, READ_HOLDING_REGISTERS, 1000, 3)
    answer = with_crc(bytes.fromhex("0703 06 0010 0000 0003"))
    assert answer_length(request, answer[:3]) == len(answer) == 11
    assert registers(request, answer) == [16, 0, 3]


def test_exception_answer_is_five_bytes_and_raises_its_code() -> None:
    request = read_request(1, READ_HOLDING_REGISTERS, 1002, 1)
    answer = with_crc(bytes.fromhex("018302"))
    assert answer_length(request, answer[:3]) == 5
    with pytest.raises(ExceptionAnswer) as raised:
        registers(request, answer)
    assert raised.value.code == 2


@pytest.mark.parametrize("head", ["020302", "010402", "010304", "01"])
def test_answer_from_another_device_function_or_length_is_a_frame_error(head: str) -> None:
    request = read_request(1, READ_HOLDING_REGISTERS, 1002, 1)
    with pytest.raises(FrameError):
        answer_length(request, bytes.fromhex(head))


def test_bad_crc_or_short_answer_is_a_frame_error() -> None:
    request = read_request(1, READ_HOLDING_REGISTERS, 1002, 1)
    good = with_crc(bytes.fromhex("0103020003"))
    with pytest.raises(FrameError):
        registers(request, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(FrameError):
        registers(request, good[:-1])


REQUEST = read_request(1, READ_HOLDING_REGISTERS, 1000, 3)


@given(st.binary(max_size=40))
def test_any_bytes_are_registers_or_a_clear_error(answer: bytes) -> None:
    """Line noise never gets past the checks as values, and never fails another way."""
    try:
        values = registers(REQUEST, answer)
    except (FrameError, ExceptionAnswer):
        return
    assert crc16(answer) == 0 and len(values) == 3  # only a whole, checked frame gets through


@given(st.lists(st.integers(min_value=0, max_value=0xFFFF), min_size=3, max_size=3),
       st.data())
def test_a_truncated_or_corrupted_answer_is_a_frame_error(values: list[int],
                                                          data: st.DataObject) -> None:
    answer = with_crc(bytes.fromhex("010306") + b"".join(v.to_bytes(2, "big") for v in values))
    assert registers(REQUEST, answer) == values
    cut = data.draw(st.integers(min_value=0, max_value=len(answer) - 1))
    with pytest.raises(FrameError):
        registers(REQUEST, answer[:cut])
    at = data.draw(st.integers(min_value=3, max_value=len(answer) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    corrupted = bytearray(answer)
    corrupted[at] ^= flip
    with pytest.raises(FrameError):  # a single corrupted byte is always caught by the CRC
        registers(REQUEST, bytes(corrupted))
