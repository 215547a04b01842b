"""Rdm6300Reader against Rdm6300Emulator through a pseudo-terminal.

Frames are written only after ``start()`` returned with the port open: pyserial flushes the
input buffer on open. "Exactly once" is checked by presenting a sentinel card afterwards and
waiting for it: the reader handles bytes in order, so everything before it has been seen.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from evsim.rdm6300_emulator import Rdm6300Emulator
from hal.errors import ReaderError
from hal.reader_rdm6300 import Rdm6300Reader
from hal.roles import TokenReader
from tests.contract.recorder import Recorder

CARD = 0x00A1B2C3
SENTINEL = 0x0BADCAFE


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, emulator: Rdm6300Emulator, **kwargs: object) -> None:
        self.emulator = emulator
        self.clock = FakeClock()
        self.tokens: Recorder[str] = Recorder()
        self.failures: Recorder[BaseException | None] = Recorder()
        self.reader = Rdm6300Reader(
            emulator.port,
            clock=self.clock,
            on_failure=self.failures,
            reopen_interval=0.05,
            **kwargs,  # type: ignore[arg-type]
        )

    async def start(self) -> None:
        await self.reader.start(self.tokens)
        assert self.reader.is_open

    async def tokens_up_to_sentinel(self) -> list[str]:
        self.clock.now += 10  # the sentinel must never be debounced away
        self.emulator.present(SENTINEL, repeats=1)
        values = await self.tokens.until_value(f"{SENTINEL:08X}")
        return values[: values.index(f"{SENTINEL:08X}")]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    emulator = Rdm6300Emulator()
    rig = Rig(emulator)
    yield rig
    await rig.reader.aclose()
    emulator.close()


async def test_reader_satisfies_the_role(rig: Rig) -> None:
    assert isinstance(rig.reader, TokenReader)


async def test_one_presentation_is_one_token_on_the_reader_thread(rig: Rig) -> None:
    await rig.start()
    rig.emulator.present(CARD, repeats=5)
    assert await rig.tokens_up_to_sentinel() == ["00A1B2C3"]
    assert threading.main_thread() not in rig.tokens.threads


async def test_garbage_is_ignored(rig: Rig) -> None:
    await rig.start()
    rig.emulator.write_raw(b"\x00\xff\x02garbage\x03\x020F00A1B2C3DE\x03\x02\x02")
    rig.emulator.present(CARD)
    rig.emulator.write_raw(b"\x02\x03noise")
    assert await rig.tokens_up_to_sentinel() == ["00A1B2C3"]


async def test_same_card_again_counts_only_after_the_repeat_window(rig: Rig) -> None:
    await rig.start()
    rig.emulator.present(CARD)
    await rig.tokens.until_value("00A1B2C3")
    rig.clock.now += 0.5  # still in the field (window 1.0 s)
    rig.emulator.present(CARD)
    rig.clock.now += 2.0
    rig.emulator.present(CARD)
    await rig.tokens.until(lambda v: len(v) >= 2)
    assert await rig.tokens_up_to_sentinel() == ["00A1B2C3", "00A1B2C3"]


async def test_another_card_is_reported_at_once(rig: Rig) -> None:
    await rig.start()
    rig.emulator.present(CARD)
    rig.emulator.present(0x11223344)
    rig.emulator.present(CARD)
    assert await rig.tokens_up_to_sentinel() == ["00A1B2C3", "11223344", "00A1B2C3"]


async def test_decimal_id_format() -> None:
    emulator = Rdm6300Emulator()
    rig = Rig(emulator, id_format="decimal")
    try:
        await rig.start()
        emulator.present(CARD)
        assert await rig.tokens.until_value("0010597059")
    finally:
        await rig.reader.aclose()
        emulator.close()


async def test_unplugged_reader_is_reported_and_comes_back(rig: Rig) -> None:
    await rig.start()
    rig.emulator.unplug()
    failures = await rig.failures.until(lambda v: len(v) >= 1)
    assert isinstance(failures[0], ReaderError)
    rig.emulator.replug()
    await rig.failures.until(lambda v: v[-1:] == [None])
    rig.emulator.present(CARD)
    assert await rig.tokens.until_value("00A1B2C3")


async def test_missing_port_at_start_does_not_raise_and_is_retried(rig: Rig) -> None:
    rig.emulator.unplug()
    await rig.reader.start(rig.tokens)
    assert not rig.reader.is_open
    assert isinstance((await rig.failures.until(lambda v: len(v) >= 1))[0], ReaderError)
    rig.emulator.replug()
    await rig.failures.until(lambda v: v[-1:] == [None])


async def test_aclose_is_idempotent(rig: Rig) -> None:
    await rig.start()
    await rig.reader.aclose()
    await rig.reader.aclose()
    assert not rig.reader.is_open
