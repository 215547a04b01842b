"""Local authorization: the cache of the CSMS's answers and the offline rules.

The rules follow the OCPP 1.6 configuration keys exactly:

* ``AuthorizationCacheEnabled``: every idTagInfo the CSMS sends (Authorize, StartTransaction,
  StopTransaction) is remembered, with its expiry; ClearCache forgets all of them.
* ``LocalPreAuthorize``: online, a cached Accepted tag starts at once, without Authorize.
* ``LocalAuthorizeOffline``: offline (or when the CSMS does not answer), a cached Accepted tag
  starts.
* ``AllowOfflineTxForUnknownId``: offline, a tag neither list nor cache knows starts too.
* ``LocalAuthListEnabled``: the local list the CSMS sends (SendLocalList) is consulted before
  the cache, with the same pre-authorize and offline rules.

A cached entry past its expiry counts as Expired, never as Accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from agent.core.settings import Settings
from agent.core.types import AuthStatus, IdTagInfo


class AuthorizationCache:
    def __init__(self, entries: Iterable[tuple[str, IdTagInfo]] = ()) -> None:
        self._entries: dict[str, IdTagInfo] = {}
        for id_tag, info in entries:
            self.update(id_tag, info)

    def update(self, id_tag: str, info: IdTagInfo) -> None:
        self._entries[id_tag.lower()] = info  # idTag is a CiString: case-insensitive

    def clear(self) -> None:
        self._entries.clear()

    def remove(self, id_tag: str) -> None:
        self._entries.pop(id_tag.lower(), None)

    def items(self) -> list[tuple[str, IdTagInfo]]:
        return list(self._entries.items())

    def lookup(self, id_tag: str, now: datetime) -> IdTagInfo | None:
        info = self._entries.get(id_tag.lower())
        if info is None:
            return None
        if info.expiry is not None and info.expiry <= now:
            return IdTagInfo(AuthStatus.EXPIRED, info.parent_id_tag, info.expiry)
        return info

    def __len__(self) -> int:
        return len(self._entries)


class LocalList:
    """The local authorization list: a version and the CSMS's entries."""

    def __init__(self, version: int = 0, entries: Iterable[tuple[str, IdTagInfo]] = ()) -> None:
        self.version = version
        self._entries = AuthorizationCache(entries)

    def replace(self, version: int, entries: Iterable[tuple[str, IdTagInfo | None]]) -> None:
        self._entries.clear()
        self.apply(version, entries)

    def apply(self, version: int, entries: Iterable[tuple[str, IdTagInfo | None]]) -> None:
        """A differential update: entries without info are removed."""
        self.version = version
        for tag, info in entries:
            if info is None:
                self._entries.remove(tag)
            else:
                self._entries.update(tag, info)

    def lookup(self, id_tag: str, now: datetime) -> IdTagInfo | None:
        return self._entries.lookup(id_tag, now)

    def entries(self) -> list[tuple[str, IdTagInfo]]:
        """The entries, idTags in lower case (idTag is case-insensitive)."""
        return self._entries.items()

    def __len__(self) -> int:
        return len(self._entries)


def local_decision(id_tag: str, cache: AuthorizationCache, settings: Settings, *,
                   online: bool, now: datetime,
                   local_list: LocalList | None = None) -> IdTagInfo | None:
    """What the charger may decide without the CSMS, or None when it must ask (online) or
    refuse (offline). The local list, when enabled, speaks before the cache."""
    listed = None
    if local_list is not None and settings.bool("LocalAuthListEnabled"):
        listed = local_list.lookup(id_tag, now)
    cached = cache.lookup(id_tag, now) if settings.bool("AuthorizationCacheEnabled") else None
    cached = listed or cached
    accepted = cached is not None and cached.status is AuthStatus.ACCEPTED
    if online:
        return cached if accepted and settings.bool("LocalPreAuthorize") else None
    if accepted and settings.bool("LocalAuthorizeOffline"):
        return cached
    if cached is None and settings.bool("AllowOfflineTxForUnknownId"):
        return IdTagInfo(AuthStatus.ACCEPTED)
    return None
