"""PN532 HSU frames: the frames in hardware.md §3.2, parsing split/garbled/truncated input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal import pn532
from hal.errors import ConfigurationError
from hal.pn532 import Ack, DataFrame, ErrorFrame, Nack, Pn532Parser


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# hardware.md §3.2, "Frames [ran]".
def test_command_frames_from_the_reference() -> None:
    assert pn532.command_frame(pn532.GET_FIRMWARE_VERSION) == h("00 00 FF 02 FE D4 02 2A 00")
    assert pn532.command_frame(
        pn532.SAM_CONFIGURATION, pn532.sam_configuration_params()
    ) == h("00 00 FF 05 FB D4 14 01 14 01 02 00")
    assert pn532.command_frame(
        pn532.IN_LIST_PASSIVE_TARGET, pn532.in_list_passive_target_params()
    ) == h("00 00 FF 04 FC D4 4A 01 00 E1 00")


def test_target_response_from_the_reference() -> None:
    wire = h("00 00 FF 0F F1 D5 4B 01 01 00 44 00 07 04 A2 B3 C4 D5 E6 80 3B 00")
    uid = h("04 A2 B3 C4 D5 E6 80")
    assert pn532.response_frame(pn532.IN_LIST_PASSIVE_TARGET, pn532.target_response(uid)) == wire
    (frame,) = Pn532Parser().feed(wire)
    assert isinstance(frame, DataFrame) and frame.tfi == pn532.TFI_PN532 and frame.code == 0x4B
    assert pn532.parse_passive_target(frame.payload[1:]) == uid
    assert pn532.format_uid(uid) == "04A2B3C4D5E680"
    assert pn532.format_uid(uid, "reversed") == "80E6D5C4B3A204"


def test_ack_nack_and_error_frames() -> None:
    frames = Pn532Parser().feed(pn532.ACK + pn532.NACK + pn532.ERROR_FRAME)
    assert frames == [Ack(), Nack(), ErrorFrame()]


def test_no_target_and_malformed_target_responses() -> None:
    assert pn532.parse_passive_target(b"\x00") is None
    for bad in (b"", b"\x01\x01\x00", b"\x01\x01\x00\x04\x08\x07\x01\x02", b"\x05" + b"\x00" * 9):
        with pytest.raises(ValueError):
            pn532.parse_passive_target(bad)


def test_four_byte_uid_and_bad_lengths() -> None:
    params = pn532.target_response(h("A1B2C3D4"))
    assert pn532.parse_passive_target(params) == h("A1B2C3D4")
    for uid in (b"", bytes(11)):
        with pytest.raises(ValueError):
            pn532.target_response(uid)
    with pytest.raises(ConfigurationError):
        pn532.format_uid(b"\x01", "backwards")  # type: ignore[arg-type]


def test_firmware_version() -> None:
    version = pn532.parse_firmware_version(h("32 01 06 07"))
    assert version.ic == pn532.IC_PN532 and str(version) == "PN532 v1.6"
    with pytest.raises(ValueError):
        pn532.parse_firmware_version(h("32 01"))


def test_extended_frame_round_trip() -> None:
    payload = bytes(range(256)) * 2
    wire = pn532.encode_frame(pn532.TFI_PN532, payload)
    assert wire[3:5] == b"\xff\xff"
    assert Pn532Parser().feed(wire) == [DataFrame(pn532.TFI_PN532, payload)]


def test_bad_checksums_are_skipped() -> None:
    good = pn532.command_frame(pn532.GET_FIRMWARE_VERSION)
    bad_dcs = good[:-2] + bytes([good[-2] ^ 1]) + good[-1:]
    bad_lcs = good[:4] + bytes([good[4] ^ 1]) + good[5:]
    frames = Pn532Parser().feed(bad_dcs + bad_lcs + good)
    assert frames == [DataFrame(pn532.TFI_HOST, b"\x02")]


def test_wakeup_bytes_before_a_frame() -> None:
    wire = pn532.WAKEUP + pn532.command_frame(pn532.SAM_CONFIGURATION, b"\x01\x14\x01")
    assert Pn532Parser().feed(wire) == [DataFrame(pn532.TFI_HOST, h("14 01 14 01"))]


def test_max_retries_params() -> None:
    assert pn532.max_retries_params(2) == h("05 FF 01 02")
    with pytest.raises(ValueError):
        pn532.max_retries_params(256)


# -- properties --------------------------------------------------------------------------------

payloads = st.binary(min_size=0, max_size=300)
tfis = st.sampled_from([pn532.TFI_HOST, pn532.TFI_PN532])


@given(tfis, payloads, st.lists(st.integers(min_value=1, max_value=40), max_size=10))
def test_any_frame_survives_any_split(tfi: int, payload: bytes, cuts: list[int]) -> None:
    wire = pn532.encode_frame(tfi, payload) * 2
    parser = Pn532Parser()
    frames: list[pn532.Frame] = []
    position = 0
    for cut in cuts:
        frames += parser.feed(wire[position : position + cut])
        position += cut
    frames += parser.feed(wire[position:])
    assert frames == [DataFrame(tfi, payload)] * 2


@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=50), max_size=8))
def test_random_input_never_raises(noise: bytes, cuts: list[int]) -> None:
    parser = Pn532Parser()
    position = 0
    for cut in [*cuts, len(noise)]:
        for frame in parser.feed(noise[position : position + cut]):
            assert isinstance(frame, Ack | Nack | ErrorFrame | DataFrame)
        position += cut


@given(st.binary(max_size=100).map(lambda b: b.replace(b"\xff", b"")), tfis, payloads)
def test_a_frame_after_noise_is_found(noise: bytes, tfi: int, payload: bytes) -> None:
    # Without 0xFF the noise holds no start code, so nothing can swallow the frame.
    assert Pn532Parser().feed(noise + pn532.encode_frame(tfi, payload)) == [
        DataFrame(tfi, payload)
    ]


@given(tfis, st.binary(min_size=1, max_size=40), st.data())
def test_a_truncated_frame_yields_nothing_until_completed(
    tfi: int, payload: bytes, data: st.DataObject
) -> None:
    wire = pn532.encode_frame(tfi, payload)
    cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 2))  # before the DCS
    parser = Pn532Parser()
    assert parser.feed(wire[:cut]) == []
    assert parser.feed(wire[cut:]) == [DataFrame(tfi, payload)]


@given(st.binary(min_size=1, max_size=10), st.sampled_from(pn532.BYTE_ORDERS))
def test_uids_round_trip_as_uppercase_hex(uid: bytes, order: pn532.ByteOrder) -> None:
    parsed = pn532.parse_passive_target(pn532.target_response(uid))
    assert parsed == uid
    text = pn532.format_uid(uid, order)
    assert text == text.upper() and len(text) == 2 * len(uid) <= 20
