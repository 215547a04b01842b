"""Pn532Reader against Pn532Emulator through a pseudo-terminal.

The emulator answers like the chip (wake-up, SAMConfiguration, GetFirmwareVersion,
InListPassiveTarget); "no more tokens" is checked by presenting a sentinel card afterwards and
waiting for it: the reader polls in order, so everything before it has been seen.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from evsim.pn532_emulator import Pn532Emulator
from hal import pn532
from hal.errors import ReaderError
from hal.reader_pn532 import Pn532Reader
from hal.roles import TokenReader
from tests.contract.recorder import Recorder

CARD = bytes.fromhex("04A2B3C4D5E680")
SENTINEL = bytes.fromhex("0BADCAFE")


async def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def polls(emulator: Pn532Emulator) -> int:
    return emulator.commands.count(pn532.IN_LIST_PASSIVE_TARGET)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, emulator: Pn532Emulator, **kwargs: object) -> None:
        self.emulator = emulator
        self.clock = FakeClock()
        self.tokens: Recorder[str] = Recorder()
        self.failures: Recorder[BaseException | None] = Recorder()
        self.reader = Pn532Reader(
            emulator.port,
            poll_interval=0.01,
            response_timeout=0.2,
            reopen_interval=0.05,
            clock=self.clock,
            on_failure=self.failures,
            **kwargs,  # type: ignore[arg-type]
        )

    async def start(self) -> None:
        await self.reader.start(self.tokens)
        assert self.reader.is_open

    async def tokens_up_to_sentinel(self) -> list[str]:
        self.clock.now += 10  # the sentinel must never count as a repeat
        self.emulator.present_uid(SENTINEL, hold_s=None)
        values = await self.tokens.until_value(SENTINEL.hex().upper())
        self.emulator.remove()
        return values[: values.index(SENTINEL.hex().upper())]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    emulator = Pn532Emulator()
    rig = Rig(emulator)
    yield rig
    await rig.reader.aclose()
    emulator.close()


async def test_reader_satisfies_the_role(rig: Rig) -> None:
    assert isinstance(rig.reader, TokenReader)


async def test_start_wakes_and_configures_the_chip(rig: Rig) -> None:
    await rig.start()
    assert rig.emulator.commands[:3] == [
        pn532.SAM_CONFIGURATION, pn532.GET_FIRMWARE_VERSION, pn532.RF_CONFIGURATION,
    ]
    assert str(rig.reader.firmware) == "PN532 v1.6"


async def test_a_held_card_is_one_token_on_the_reader_thread(rig: Rig) -> None:
    await rig.start()
    rig.emulator.present_uid(CARD, hold_s=None)
    assert await rig.tokens.until_value("04A2B3C4D5E680")
    seen = polls(rig.emulator)
    await eventually(lambda: polls(rig.emulator) > seen + 5)  # still held
    rig.emulator.remove()
    assert await rig.tokens_up_to_sentinel() == ["04A2B3C4D5E680"]
    assert threading.main_thread() not in rig.tokens.threads


async def test_no_card_no_token(rig: Rig) -> None:
    await rig.start()
    await eventually(lambda: polls(rig.emulator) >= 5)
    assert await rig.tokens_up_to_sentinel() == []
    assert rig.failures.values == []


async def test_same_card_again_after_the_repeat_window(rig: Rig) -> None:
    await rig.start()
    rig.emulator.present(0xA1B2C3D4, hold_s=None)
    await rig.tokens.until_value("A1B2C3D4")
    rig.emulator.remove()
    rig.clock.now += 0.5  # back within the window: the same presentation
    rig.emulator.present(0xA1B2C3D4, hold_s=None)
    seen = polls(rig.emulator)
    await eventually(lambda: polls(rig.emulator) > seen + 3)
    rig.emulator.remove()
    rig.clock.now += 2.0
    rig.emulator.present(0xA1B2C3D4, hold_s=None)
    await rig.tokens.until(lambda v: len(v) >= 2)
    rig.emulator.remove()
    assert await rig.tokens_up_to_sentinel() == ["A1B2C3D4", "A1B2C3D4"]


async def test_reversed_byte_order() -> None:
    emulator = Pn532Emulator()
    rig = Rig(emulator, byte_order="reversed")
    try:
        await rig.start()
        emulator.present(0xA1B2C3D4)
        assert await rig.tokens.until_value("D4C3B2A1")
    finally:
        await rig.reader.aclose()
        emulator.close()


async def test_unplugged_reader_is_reported_and_comes_back(rig: Rig) -> None:
    await rig.start()
    rig.emulator.unplug()
    failures = await rig.failures.until(lambda v: len(v) >= 1)
    assert isinstance(failures[0], ReaderError)
    assert not rig.reader.is_open
    rig.emulator.replug()  # a new chip, asleep: the reader must wake and configure it again
    await rig.failures.until(lambda v: v[-1:] == [None])
    assert len(rig.failures.values) == 2  # one failure, one recovery: no repeats
    rig.emulator.present_uid(CARD)
    assert await rig.tokens.until_value("04A2B3C4D5E680")


async def test_a_reader_that_stops_answering_is_reported(rig: Rig) -> None:
    await rig.start()
    rig.emulator.silent = True
    assert isinstance((await rig.failures.until(lambda v: len(v) >= 1))[0], ReaderError)
    rig.emulator.silent = False
    await rig.failures.until(lambda v: v[-1:] == [None])
    rig.emulator.present_uid(CARD)
    assert await rig.tokens.until_value("04A2B3C4D5E680")


async def test_missing_port_at_start_does_not_raise_and_is_retried(rig: Rig) -> None:
    rig.emulator.unplug()
    await rig.reader.start(rig.tokens)
    assert not rig.reader.is_open
    assert isinstance((await rig.failures.until(lambda v: len(v) >= 1))[0], ReaderError)
    rig.emulator.replug()
    await rig.failures.until(lambda v: v[-1:] == [None])
    assert rig.reader.is_open


async def test_aclose_is_idempotent(rig: Rig) -> None:
    await rig.start()
    await rig.reader.aclose()
    await rig.reader.aclose()
    assert not rig.reader.is_open
