"""What the runtime persists besides the message journal, as one small protocol.

The SQLite store implements it on a charger; :class:`MemoryPersistence` keeps the same data in
memory (tests that restart the core in-process, and runs without a state directory).
"""

from __future__ import annotations

from typing import Protocol

from agent.core.schedule import ChargingProfile
from agent.core.types import AuthorizationInfo, LocalLimits, Reservation


class Persistence(Protocol):
    def save_setting(self, name: str, value: str) -> None: ...

    def save_availability(self, connector_id: int, operative: bool) -> None: ...

    def cache_id_tag(self, id_tag: str | None, info: AuthorizationInfo | None) -> None:
        """Remember ``info`` for ``id_tag``; ``id_tag`` None clears the whole cache."""

    def save_local_list(self, version: int,
                        entries: list[tuple[str, AuthorizationInfo]]) -> None: ...

    def save_reservations(self, reservations: list[Reservation]) -> None:
        """Replace every kept reservation by ``reservations``."""

    def load_settings(self) -> dict[str, str]: ...

    def load_local_list(self) -> tuple[int, list[tuple[str, AuthorizationInfo]]]: ...

    def load_availability(self) -> dict[int, bool]: ...

    def load_cache(self) -> list[tuple[str, AuthorizationInfo]]: ...

    def load_reservations(self) -> list[Reservation]: ...

    def save_charging_profiles(self, profiles: list[ChargingProfile]) -> None:
        """Replace every kept charging profile by ``profiles``."""

    def load_charging_profiles(self) -> list[ChargingProfile]: ...

    def save_local_limits(self, connector_id: int, limits: LocalLimits) -> None:
        """Keep what local clients asked of the connector (nothing asked: forget it)."""

    def load_local_limits(self) -> dict[int, LocalLimits]: ...


class MemoryPersistence:
    def __init__(self) -> None:
        self.settings: dict[str, str] = {}
        self.availability: dict[int, bool] = {}
        self.cache: dict[str, AuthorizationInfo] = {}
        self.local_list: tuple[int, list[tuple[str, AuthorizationInfo]]] = (0, [])
        self.reservations: list[Reservation] = []
        self.charging_profiles: list[ChargingProfile] = []
        self.local_limits: dict[int, LocalLimits] = {}

    def save_setting(self, name: str, value: str) -> None:
        self.settings[name] = value

    def save_availability(self, connector_id: int, operative: bool) -> None:
        self.availability[connector_id] = operative

    def cache_id_tag(self, id_tag: str | None, info: AuthorizationInfo | None) -> None:
        if id_tag is None or info is None:
            self.cache.clear()
        else:
            self.cache[id_tag] = info

    def save_local_list(self, version: int, entries: list[tuple[str, AuthorizationInfo]]) -> None:
        self.local_list = (version, list(entries))

    def save_reservations(self, reservations: list[Reservation]) -> None:
        self.reservations = list(reservations)

    def load_settings(self) -> dict[str, str]:
        return dict(self.settings)

    def load_local_list(self) -> tuple[int, list[tuple[str, AuthorizationInfo]]]:
        return self.local_list[0], list(self.local_list[1])

    def load_availability(self) -> dict[int, bool]:
        return dict(self.availability)

    def load_cache(self) -> list[tuple[str, AuthorizationInfo]]:
        return list(self.cache.items())

    def load_reservations(self) -> list[Reservation]:
        return list(self.reservations)

    def save_charging_profiles(self, profiles: list[ChargingProfile]) -> None:
        self.charging_profiles = list(profiles)

    def load_charging_profiles(self) -> list[ChargingProfile]:
        return list(self.charging_profiles)

    def save_local_limits(self, connector_id: int, limits: LocalLimits) -> None:
        if limits == LocalLimits():
            self.local_limits.pop(connector_id, None)
        else:
            self.local_limits[connector_id] = limits

    def load_local_limits(self) -> dict[int, LocalLimits]:
        return dict(self.local_limits)
