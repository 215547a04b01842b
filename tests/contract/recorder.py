"""A thread-safe callback recorder for driver contract tests: wait on conditions, never sleep."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recorder(Generic[T]):
    """Records every value a driver calls back with, and the thread it was called on."""

    def __init__(self) -> None:
        self.values: list[T] = []
        self.threads: list[threading.Thread] = []
        self._cond = threading.Condition()

    def __call__(self, value: T) -> None:
        with self._cond:
            self.values.append(value)
            self.threads.append(threading.current_thread())
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[T]], bool], timeout: float = 3.0) -> list[T]:
        """Block until ``predicate(values)`` holds; AssertionError with the values on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.values), timeout):
                raise AssertionError(f"timed out; recorded {self.values!r}")
            return list(self.values)

    def wait_for_value(self, value: T, timeout: float = 3.0) -> list[T]:
        return self.wait_for(lambda values: value in values, timeout)

    async def until(self, predicate: Callable[[list[T]], bool], within: float = 3.0) -> list[T]:
        """:meth:`wait_for` without blocking the event loop (emulators may be serving on it)."""
        return await asyncio.to_thread(self.wait_for, predicate, within)

    async def until_value(self, value: T, within: float = 3.0) -> list[T]:
        return await asyncio.to_thread(self.wait_for_value, value, within)
