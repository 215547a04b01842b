"""An energy meter read over Modbus with a declarative register map (role: EnergyMeter).

One :meth:`ModbusEnergyMeter.read` issues the few block reads the map plans
(:meth:`hal.meter_maps.RegisterMap.blocks`) and decodes every quantity from them, so a sample
costs one to three requests on the shared bus, not one per quantity.
"""

from __future__ import annotations

import logging

from hal.errors import MeterError
from hal.meter_maps import RegisterImage, RegisterMap
from hal.modbus_bus import ModbusBus
from hal.roles import MeterReading

logger = logging.getLogger(__name__)


class ModbusEnergyMeter:
    """A meter at ``device_id`` on ``bus``, laid out as ``register_map`` says.

    The bus is shared and owned by the caller: :meth:`aclose` stops using it but does not
    close it.
    """

    def __init__(self, bus: ModbusBus, device_id: int, register_map: RegisterMap) -> None:
        self._bus = bus
        self._device_id = device_id
        self._map = register_map
        self._blocks = register_map.blocks()
        self._closed = False

    @property
    def register_map(self) -> RegisterMap:
        return self._map

    async def read(self) -> MeterReading:
        """Read one sample; raises MeterError on a bus failure or an unusable energy register."""
        if self._closed:
            raise MeterError(f"meter {self._map.name} id={self._device_id} is closed")
        image = RegisterImage()
        for address, count in self._blocks:
            image.put(address, await self._read_block(address, count))
        return self._decode(image)

    async def aclose(self) -> None:
        """Stop reading. Idempotent; the shared bus stays open."""
        self._closed = True

    async def _read_block(self, address: int, count: int) -> list[int]:
        if self._map.function_code == 4:
            return await self._bus.aread_input_registers(
                self._device_id, address, count, error=MeterError
            )
        return await self._bus.aread_holding_registers(
            self._device_id, address, count, error=MeterError
        )

    def _decode(self, image: RegisterImage) -> MeterReading:
        m = self._map
        energy = image.value(m.energy)
        if energy is None or energy < 0:
            raise MeterError(f"meter {m.name} id={self._device_id}: energy register unusable")
        return MeterReading(
            energy_wh=energy,
            power_w=image.value(m.power),
            voltage_v=image.phases(m.voltage),
            current_a=image.phases(m.current),
            frequency_hz=image.value(m.frequency),
        )
