"""RDM6300 frame parser: hardware.md §3.1 examples and robustness properties."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.errors import ConfigurationError
from hal.rdm6300 import Rdm6300Parser, decode_frame, encode_frame

EXAMPLE = b"\x020F00A1B2C3DF\x03"  # hardware.md: type 0x0F, id 0x00A1B2C3
VALID_HEX = re.compile(r"[0-9A-F]{8}")

card_ids = st.integers(min_value=0, max_value=0xFFFF_FFFF)
versions = st.integers(min_value=0, max_value=0xFF)


def feed_chunks(parser: Rdm6300Parser, data: bytes, cuts: list[int]) -> list[str]:
    ids: list[str] = []
    edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        ids += parser.feed(data[start:end])
    return ids


def test_encode_matches_the_documented_example() -> None:
    assert encode_frame(0x0F, 0x00A1B2C3) == EXAMPLE


def test_decode_the_documented_example() -> None:
    assert decode_frame(EXAMPLE) == (0x0F, 0x00A1B2C3)


@pytest.mark.parametrize(
    ("id_format", "expected"),
    [("hex", "00A1B2C3"), ("hex10", "0F00A1B2C3"), ("decimal", "0010597059")],
)
def test_id_formats(id_format: str, expected: str) -> None:
    assert Rdm6300Parser(id_format).feed(EXAMPLE) == [expected]  # type: ignore[arg-type]


def test_unknown_id_format_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Rdm6300Parser("octal")  # type: ignore[arg-type]


def test_lowercase_hex_is_accepted_and_reported_uppercase() -> None:
    assert Rdm6300Parser().feed(b"\x020f00a1b2c3df\x03") == ["00A1B2C3"]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x020F00A1B2C3DE\x03",  # bad checksum
        b"\x020F00A1B2C3DF\x04",  # wrong ETX
        b"0F00A1B2C3DF\x03",  # no STX
        b"\x020F00A1B2C3DF",  # no ETX (yet)
        b"\x020F00A1BZC3DF\x03",  # non-hex character
        b"\x020F00A1B2C3\x03",  # short
    ],
)
def test_broken_frames_yield_nothing(frame: bytes) -> None:
    assert Rdm6300Parser().feed(frame) == []


def test_repeats_are_all_reported_the_reader_debounces() -> None:
    assert Rdm6300Parser().feed(EXAMPLE * 3) == ["00A1B2C3"] * 3


def test_frame_after_a_truncated_one_is_recovered() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(EXAMPLE[:7]) == []
    assert parser.feed(EXAMPLE) == ["00A1B2C3"]


def test_stx_inside_garbage_does_not_hide_the_next_frame() -> None:
    assert Rdm6300Parser().feed(b"\x02\x02AB\x02" + EXAMPLE + b"\x03\x02") == ["00A1B2C3"]


def test_encode_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        encode_frame(0x100, 1)
    with pytest.raises(ValueError):
        encode_frame(0, 1 << 32)


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=10))
def test_random_bytes_never_crash_nor_yield_invalid_ids(data: bytes, cuts: list[int]) -> None:
    for uid in feed_chunks(Rdm6300Parser(), data, cuts):
        assert VALID_HEX.fullmatch(uid)


@given(
    st.lists(st.tuples(st.binary(max_size=20), versions, card_ids), min_size=1, max_size=5),
    st.binary(max_size=20),
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_valid_frames_in_garbage_split_anywhere_are_all_recovered(
    parts: list[tuple[bytes, int, int]], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(garbage + encode_frame(v, c) for garbage, v, c in parts) + tail
    got = feed_chunks(Rdm6300Parser(), stream, cuts)
    # Garbage may by chance contain a valid frame too; ours must be there, in order.
    expected = iter(f"{c:08X}" for _, _, c in parts)
    want: str | None = next(expected)
    for uid in got:
        if uid == want:
            want = next(expected, None)
    assert want is None


@given(versions, card_ids, st.integers(min_value=0, max_value=13))
def test_truncated_frames_yield_nothing(version: int, card_id: int, length: int) -> None:
    assert Rdm6300Parser().feed(encode_frame(version, card_id)[:length]) == []


@given(versions, card_ids)
def test_encode_decode_round_trip(version: int, card_id: int) -> None:
    assert decode_frame(encode_frame(version, card_id)) == (version, card_id)
