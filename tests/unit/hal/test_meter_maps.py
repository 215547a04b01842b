"""Register maps: decoding known register values per meter model, and read planning."""

from __future__ import annotations

import struct

import pytest

from hal.errors import ConfigurationError
from hal.meter_maps import (
    ABB_B23,
    EM340,
    REGISTER_MAPS,
    SDM72,
    SDM120,
    SDM630,
    Register,
    RegisterImage,
    register_map,
)


def float_words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def test_sdm630_float32_big_endian_energy_in_wh() -> None:
    assert SDM630.energy.decode(float_words(1234.5)) == pytest.approx(1_234_500.0)
    assert SDM630.energy.decode([0x4499, 0xA000]) == pytest.approx(1_229_000.0)  # 1229.0 kWh


def test_sdm630_voltage_register_decodes_volts() -> None:
    assert SDM630.voltage is not None
    assert SDM630.voltage[0].decode([0x4366, 0x0000]) == pytest.approx(230.0)


def test_em340_int32_low_word_first() -> None:
    # 2301 (0x000008FD) low word first = [0x08FD, 0x0000]; read as big it would be 150798336.
    assert EM340.voltage is not None
    assert EM340.voltage[0].decode([0x08FD, 0x0000]) == pytest.approx(230.1)
    assert EM340.energy.decode([0x3039, 0x0000]) == pytest.approx(12345 * 100.0)  # 1234.5 kWh
    assert EM340.power.decode([0xFFF6, 0xFFFF]) == pytest.approx(-1.0)  # type: ignore[union-attr]


def test_em340_frequency_int16() -> None:
    assert EM340.frequency is not None
    assert EM340.frequency.decode([500]) == pytest.approx(50.0)


def test_abb_b23_scaled_integers() -> None:
    assert ABB_B23.energy.decode([0, 0, 0x0001, 0xE240]) == pytest.approx(123456 * 10.0)
    assert ABB_B23.power.decode([0xFFFF, 0xFF9C]) == pytest.approx(-1.0)  # type: ignore[union-attr]
    assert ABB_B23.frequency.decode([5001]) == pytest.approx(50.01)  # type: ignore[union-attr]


def test_abb_not_available_marker_is_none() -> None:
    assert ABB_B23.voltage is not None
    assert ABB_B23.voltage[0].decode([0xFFFF, 0xFFFF]) is None


def test_nan_float_is_none() -> None:
    assert SDM630.energy.decode([0x7FC0, 0x0000]) is None


def test_decode_wrong_length_raises() -> None:
    with pytest.raises(ValueError):
        SDM630.energy.decode([0])


@pytest.mark.parametrize("model", sorted(REGISTER_MAPS))
def test_encode_then_decode_round_trips_every_register(model: str) -> None:
    for reg in REGISTER_MAPS[model].registers():
        assert reg.decode(reg.encode(230.1)) == pytest.approx(230.1, abs=reg.scale)


@pytest.mark.parametrize("model", sorted(REGISTER_MAPS))
def test_blocks_cover_every_register_within_limits(model: str) -> None:
    m = REGISTER_MAPS[model]
    blocks = m.blocks()
    for reg in m.registers():
        assert any(a <= reg.address and reg.address + reg.words <= a + n for a, n in blocks)
    assert all(n <= m.max_read for _, n in blocks)


def test_sdm630_needs_two_requests_abb_two() -> None:
    assert len(SDM630.blocks()) == 2
    assert len(ABB_B23.blocks()) == 2
    assert len(SDM72.blocks()) == 1


def test_image_fills_single_phase_meter_l2_l3_with_zero() -> None:
    image = RegisterImage()
    image.put(0x0000, float_words(229.5))
    assert image.phases(SDM120.voltage) == pytest.approx((229.5, 0.0, 0.0))


def test_image_phases_none_when_one_phase_not_available() -> None:
    image = RegisterImage()
    assert ABB_B23.voltage is not None
    image.put(0x5B00, [0, 2301, 0xFFFF, 0xFFFF, 0, 2300])
    assert image.phases(ABB_B23.voltage) is None


def test_image_value_of_unread_register_raises() -> None:
    with pytest.raises(ValueError):
        RegisterImage().value(Register(0x10, "uint16"))


def test_lookup_by_name() -> None:
    assert register_map("SDM630") is SDM630
    with pytest.raises(ConfigurationError):
        register_map("sdm999")
