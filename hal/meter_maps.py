"""Declarative Modbus register maps of energy meters, and the one place that decodes them.

A :class:`RegisterMap` says, per meter model, which function code reads the measurements and
where each quantity lives: address, data type, word order and the factor that turns the raw
number into SI units (energy in Wh, power in W, voltage in V, current in A, frequency in Hz).
Addresses are 0-based protocol addresses (Modicon 30001/40001 minus the offset).

The maps are used by the driver (:mod:`hal.meter_modbus`) to decode and by the simulator to
encode, so word order and scaling can never disagree between the two. Sources: hardware.md §2
(Eastron manuals, volkszaehler/mbmd).

Single-phase meters (SDM120) have no L2/L3 registers; the decoder reports those phases as 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.client.mixin import ModbusClientMixin

from hal.errors import ConfigurationError

DataTypeName = Literal["float32", "int16", "uint16", "int32", "uint32", "uint64"]
WordOrder = Literal["big", "little"]
FunctionCode = Literal[3, 4]
Quantity = Literal["energy", "power", "voltage", "current", "frequency"]

_DATATYPE = ModbusClientMixin.DATATYPE
_PYMODBUS_TYPES: Mapping[DataTypeName, ModbusClientMixin.DATATYPE] = {
    "float32": _DATATYPE.FLOAT32,
    "int16": _DATATYPE.INT16,
    "uint16": _DATATYPE.UINT16,
    "int32": _DATATYPE.INT32,
    "uint32": _DATATYPE.UINT32,
    "uint64": _DATATYPE.UINT64,
}
_WORDS: Mapping[DataTypeName, int] = {
    "float32": 2,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "uint64": 4,
}
# "Not available" markers some meters (ABB) put into integer registers.
_NOT_AVAILABLE: Mapping[DataTypeName, int] = {
    "uint16": 0xFFFF,
    "int16": 0x7FFF,
    "uint32": 0xFFFF_FFFF,
    "int32": 0x7FFF_FFFF,
    "uint64": 0xFFFF_FFFF_FFFF_FFFF,
}


@dataclass(frozen=True)
class Register:
    """One measurement: ``value_si = raw * scale``; ``words`` registers from ``address``."""

    address: int
    datatype: DataTypeName
    scale: float = 1.0
    word_order: WordOrder = "big"

    @property
    def words(self) -> int:
        return _WORDS[self.datatype]

    def decode(self, registers: Sequence[int]) -> float | None:
        """Decode exactly ``words`` registers; None for a "not available" marker or NaN/inf."""
        if len(registers) != self.words:
            raise ValueError(f"{self.datatype} needs {self.words} registers, got {len(registers)}")
        raw = ModbusClientMixin.convert_from_registers(
            list(registers), _PYMODBUS_TYPES[self.datatype], word_order=self.word_order
        )
        if not isinstance(raw, int | float) or raw == _NOT_AVAILABLE.get(self.datatype):
            return None
        value = float(raw) * self.scale
        return value if math.isfinite(value) else None

    def encode(self, value: float) -> list[int]:
        """Encode an SI value into registers (the inverse of :meth:`decode`, rounding integers)."""
        raw = value / self.scale
        typed: int | float = raw if self.datatype == "float32" else round(raw)
        return ModbusClientMixin.convert_to_registers(
            typed, _PYMODBUS_TYPES[self.datatype], word_order=self.word_order
        )


Phases = tuple[Register, Register | None, Register | None]


@dataclass(frozen=True)
class RegisterMap:
    """Where one meter model keeps its measurements.

    ``max_gap`` is how many unused registers a single read may span to join two measurements
    (the gap registers must be readable on the real meter); ``max_read`` caps one request.
    """

    name: str
    function_code: FunctionCode
    energy: Register
    power: Register | None = None
    voltage: Phases | None = None
    current: Phases | None = None
    frequency: Register | None = None
    max_gap: int = 32
    max_read: int = 100
    description: str = field(default="", compare=False)

    def registers(self) -> list[Register]:
        """Every register of the map, without duplicates, sorted by address."""
        regs: list[Register | None] = [self.energy, self.power, self.frequency]
        for phases in (self.voltage, self.current):
            regs.extend(phases or ())
        unique = {r.address: r for r in regs if r is not None}
        return [unique[a] for a in sorted(unique)]

    def blocks(self) -> list[tuple[int, int]]:
        """The (address, count) reads that fetch every register in as few requests as allowed."""
        blocks: list[tuple[int, int]] = []
        for reg in self.registers():
            end = reg.address + reg.words
            if blocks:
                start, count = blocks[-1]
                gap = reg.address - (start + count)
                if gap <= self.max_gap and end - start <= self.max_read:
                    blocks[-1] = (start, max(count, end - start))
                    continue
            blocks.append((reg.address, reg.words))
        return blocks


class RegisterImage:
    """Registers read from a meter, addressed like the meter (a sparse copy of its memory)."""

    def __init__(self) -> None:
        self._words: dict[int, int] = {}

    def put(self, address: int, values: Sequence[int]) -> None:
        for offset, value in enumerate(values):
            self._words[address + offset] = value

    def value(self, reg: Register | None) -> float | None:
        """The decoded value of ``reg``; None when the map lacks it or the meter says n/a."""
        if reg is None:
            return None
        try:
            words = [self._words[reg.address + i] for i in range(reg.words)]
        except KeyError as exc:
            raise ValueError(f"register {reg.address:#06x} was not read") from exc
        return reg.decode(words)

    def phases(self, regs: Phases | None) -> tuple[float, float, float] | None:
        """Three per-phase values; missing phase registers read as 0.0, any n/a gives None."""
        if regs is None:
            return None
        values = [0.0 if r is None else self.value(r) for r in regs]
        if any(v is None for v in values):
            return None
        l1, l2, l3 = (float(v or 0.0) for v in values)
        return (l1, l2, l3)


def _float_phases(*addresses: int, scale: float = 1.0) -> Phases:
    l1, l2, l3 = (Register(a, "float32", scale) for a in addresses)
    return (l1, l2, l3)


def _int_phases(datatype: DataTypeName, *addresses: int, scale: float, order: WordOrder) -> Phases:
    l1, l2, l3 = (Register(a, datatype, scale, order) for a in addresses)
    return (l1, l2, l3)


SDM630 = RegisterMap(
    name="sdm630",
    function_code=4,
    energy=Register(0x0048, "float32", 1000.0),
    power=Register(0x0034, "float32"),
    voltage=_float_phases(0x0000, 0x0002, 0x0004),
    current=_float_phases(0x0006, 0x0008, 0x000A),
    frequency=Register(0x0046, "float32"),
    description="Eastron SDM630 (float32, high word first; 9600 8N1, id 1)",
)

SDM120 = RegisterMap(
    name="sdm120",
    function_code=4,
    energy=Register(0x0048, "float32", 1000.0),
    power=Register(0x000C, "float32"),
    voltage=(Register(0x0000, "float32"), None, None),
    current=(Register(0x0006, "float32"), None, None),
    frequency=Register(0x0046, "float32"),
    description="Eastron SDM120, single phase (float32; 2400 8N1 by default)",
)

SDM72 = RegisterMap(
    name="sdm72",
    function_code=4,
    energy=Register(0x0048, "float32", 1000.0),
    power=Register(0x0034, "float32"),
    description="Eastron SDM72D-M v1 (float32; power and import energy only)",
)

ABB_B23 = RegisterMap(
    name="abb_b23",
    function_code=3,
    energy=Register(0x5000, "uint64", 10.0),  # 0.01 kWh
    power=Register(0x5B14, "int32", 0.01),
    voltage=_int_phases("uint32", 0x5B00, 0x5B02, 0x5B04, scale=0.1, order="big"),
    current=_int_phases("uint32", 0x5B0C, 0x5B0E, 0x5B10, scale=0.01, order="big"),
    frequency=Register(0x5B2C, "uint16", 0.01),
    description="ABB B23/B24 (holding registers, big-endian integers)",
)

EM340 = RegisterMap(
    name="em340",
    function_code=4,
    energy=Register(0x0034, "int32", 100.0, "little"),  # 0.1 kWh
    power=Register(0x0028, "int32", 0.1, "little"),
    voltage=_int_phases("int32", 0x0000, 0x0002, 0x0004, scale=0.1, order="little"),
    current=_int_phases("int32", 0x000C, 0x000E, 0x0010, scale=0.001, order="little"),
    frequency=Register(0x0033, "int16", 0.1),
    description="Carlo Gavazzi EM340/EM330 (int32, low word first)",
)

REGISTER_MAPS: Mapping[str, RegisterMap] = {
    m.name: m for m in (SDM630, SDM120, SDM72, ABB_B23, EM340)
}


def register_map(name: str) -> RegisterMap:
    """The map called ``name`` (case-insensitive); :class:`ConfigurationError` if unknown."""
    try:
        return REGISTER_MAPS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(REGISTER_MAPS))
        raise ConfigurationError(f"unknown meter model {name!r} (known: {known})") from None
