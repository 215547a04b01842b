"""Authorization: tokens presented, the CSMS's answers, the cache, the local list and the
offline rules.

:class:`Authorizer` decides what a token does: stop its own transaction, start one on the
connector waiting for it (plug first), float until the next plug-in (card first), or stop a
transaction of its group. It asks the CSMS unless the local rules may decide, and gives the
CSMS ``authorize_timeout`` seconds to answer before the offline rules decide.

The local rules follow the OCPP 1.6 configuration keys exactly:

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
from dataclasses import replace
from datetime import datetime

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.availability import Availability
from agent.core.connector import Authorization, Connector
from agent.core.context import Context, Pending
from agent.core.lifecycle import Phase
from agent.core.reservations import Reservations
from agent.core.settings import LOCAL_LIST_MAX, SEND_LOCAL_LIST_MAX, Settings
from agent.core.transactions import Transactions
from agent.core.types import AuthorizationInfo, AuthStatus, StopReason, TxTrigger


class AuthorizationCache:
    def __init__(self, entries: Iterable[tuple[str, AuthorizationInfo]] = ()) -> None:
        self._entries: dict[str, AuthorizationInfo] = {}
        for id_tag, info in entries:
            self.update(id_tag, info)

    def update(self, id_tag: str, info: AuthorizationInfo) -> None:
        self._entries[id_tag.lower()] = info  # idTag is a CiString: case-insensitive

    def clear(self) -> None:
        self._entries.clear()

    def remove(self, id_tag: str) -> None:
        self._entries.pop(id_tag.lower(), None)

    def items(self) -> list[tuple[str, AuthorizationInfo]]:
        return list(self._entries.items())

    def lookup(self, id_tag: str, now: datetime) -> AuthorizationInfo | None:
        info = self._entries.get(id_tag.lower())
        if info is None:
            return None
        if info.expiry is not None and info.expiry <= now:
            return AuthorizationInfo(AuthStatus.EXPIRED, info.group_id, info.expiry)
        return info

    def __len__(self) -> int:
        return len(self._entries)


class LocalList:
    """The local authorization list: a version and the CSMS's entries."""

    def __init__(self, version: int = 0,
                 entries: Iterable[tuple[str, AuthorizationInfo]] = ()) -> None:
        self.version = version
        self._entries = AuthorizationCache(entries)

    def replace(self, version: int,
                entries: Iterable[tuple[str, AuthorizationInfo | None]]) -> None:
        self._entries.clear()
        self.apply(version, entries)

    def apply(self, version: int, entries: Iterable[tuple[str, AuthorizationInfo | None]]) -> None:
        """A differential update: entries without info are removed."""
        self.version = version
        for tag, info in entries:
            if info is None:
                self._entries.remove(tag)
            else:
                self._entries.update(tag, info)

    def lookup(self, id_tag: str, now: datetime) -> AuthorizationInfo | None:
        return self._entries.lookup(id_tag, now)

    def entries(self) -> list[tuple[str, AuthorizationInfo]]:
        """The entries, idTags in lower case (idTag is case-insensitive)."""
        return self._entries.items()

    def __len__(self) -> int:
        return len(self._entries)


def local_decision(id_tag: str, cache: AuthorizationCache, settings: Settings, *,
                   online: bool, now: datetime,
                   local_list: LocalList | None = None) -> AuthorizationInfo | None:
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
        return AuthorizationInfo(AuthStatus.ACCEPTED)
    return None


REASONS = {
    AuthStatus.ACCEPTED: "accepted",
    AuthStatus.INVALID: "unknown_card",
    AuthStatus.BLOCKED: "blocked",
    AuthStatus.EXPIRED: "expired",
    AuthStatus.CONCURRENT_TX: "concurrent_transaction",
}
"""The reason recorded for each OCPP status (fx.AuthorizationDecided); the others are
``csms_timeout``, ``csms_unreachable``, ``offline_unknown``, ``connector_not_free``,
``reserved_for_another``."""


class Authorizer:
    def __init__(self, ctx: Context, transactions: Transactions, availability: Availability,
                 reservations: Reservations) -> None:
        self._ctx = ctx
        self._transactions = transactions
        self._availability = availability
        self._reservations = reservations
        self.cache = AuthorizationCache()
        self.local_list = LocalList()
        self._local_list_saved = self.local_list  # what LocalListNotSaved goes back to
        self._floating: Authorization | None = None

    def restore(self, cache: list[tuple[str, AuthorizationInfo]], list_version: int,
                list_entries: list[tuple[str, AuthorizationInfo]]) -> None:
        """The cache and the local list kept across restarts; before the Started event."""
        self.cache = AuthorizationCache(cache)
        self.local_list = LocalList(list_version, list_entries)

    # --- a token is presented ------------------------------------------------------------

    def on_token(self, event: ev.TokenPresented) -> None:
        id_tag = event.id_tag
        if self._ctx.shutting_down:
            return
        owner = self._transactions.owner_of(id_tag)
        if owner is not None:
            self._transactions.stop(owner, StopReason.LOCAL, id_tag)
            return
        target = self._target(id_tag)
        if target is not None:
            self.request(id_tag, "connector", target)
        elif any(c.transaction and c.transaction.group_id
                 for c in self._ctx.connectors.values()):
            self.request(id_tag, "parent_stop", 0)
        else:
            self._ctx.notice(0, "rejected", "no connector can take this card now")

    def _target(self, id_tag: str) -> int | None:
        """Plug first: the connector waiting for a card. Card first: the only connector, or 0,
        meaning the authorization floats until the next plug-in (DESIGN.md, token reader).
        A connector reserved for someone else takes no card."""
        usable = [c for c in self._ctx.connectors.values()
                  if c.free and not self._ctx.shutting_down
                  and not self._reservations.may_block(c, id_tag)]
        waiting = [c for c in usable if c.phase is Phase.PLUGGED]
        if waiting:
            return waiting[0].connector_id
        idle = [c for c in usable if c.phase is Phase.IDLE]
        if not idle:
            return None
        return idle[0].connector_id if len(self._ctx.connectors) == 1 else 0

    def on_start_requested(self, event: ev.StartRequested) -> None:
        """The sessions API asks for a start: authorized like a card for that connector."""
        self.request(event.id_tag, "api", event.connector_id)

    def on_start_withdrawn(self, event: ev.StartWithdrawn) -> None:
        """The sessions API gives up its start: the token held for ``event.id_tag`` on the
        connector, waiting for the plug, is dropped as ConnectionTimeOut would drop it, so
        the connector is free for the start that replaces it (sessions-api.md §2: "after 2
        minutes in WAITING_TO_START consider it failed and allow a new start"). Only that
        token, and only while it waits: a transaction that began is that start's, and
        stays."""
        connector = self._ctx.connectors.get(event.connector_id)
        if connector is None or connector.phase is not Phase.AUTHORIZED:
            return
        held = connector.authorization
        if held is None or held.id_tag.lower() != event.id_tag.lower():  # CiString
            return
        self._ctx.emit(fx.CancelTimer(f"connection:{connector.connector_id}"))
        self._release(connector)

    def request(self, id_tag: str, purpose: str, connector_id: int,
                remote_start_id: int | None = None) -> None:
        """Decide locally where the rules allow, else ask the CSMS."""
        pending = Pending("authorize", connector_id, id_tag, purpose,
                          remote_start_id=remote_start_id)
        if self._ctx.config.free_vend_id_tag is not None and purpose != "parent_stop":
            self._record(pending, True, "free_vend", None, "free_vend")
            self._grant(pending, None)
            return
        online = self._ctx.online
        local = self._local(id_tag, online=online)
        if local is not None and purpose != "parent_stop":
            # LocalPreAuthorize, or offline rules
            self._decide(pending, local, "cache" if online else "offline_rule")
        elif online:
            ref = self._ctx.send(msg.AuthorizationRequest(id_tag), pending)
            self._ctx.emit(fx.StartTimer(f"authorize:{ref}", self._ctx.config.authorize_timeout))
        else:
            self._record(pending, False, "offline_rule", None, "offline_unknown")
            self._ctx.notice(connector_id, "rejected", f"{id_tag}: offline and not known locally")

    def _record(self, pending: Pending, accepted: bool, source: str, status: str | None,
                reason: str) -> None:
        self._ctx.emit(fx.AuthorizationDecided(pending.connector_id, pending.id_tag,
                                               pending.purpose, accepted, source, status,
                                               reason))

    def _local(self, id_tag: str, online: bool) -> AuthorizationInfo | None:
        return local_decision(id_tag, self.cache, self._ctx.settings, online=online,
                              now=self._ctx.now.utc, local_list=self.local_list)

    def on_answer(self, ref: str, pending: Pending, conf: msg.InboundConf) -> None:
        self._ctx.emit(fx.CancelTimer(f"authorize:{ref}"))
        if isinstance(conf, msg.AuthorizationResult):
            self.remember(pending.id_tag, conf.info)
            self._decide(pending, conf.info, "csms")

    def on_failed(self, pending: Pending, reason: str) -> None:
        """The CSMS did not answer: the offline rules decide."""
        local = self._local(pending.id_tag, online=False)
        if local is None:
            why = "csms_timeout" if reason == "timeout" else "csms_unreachable"
            self._record(pending, False, "offline_rule", None, why)
            self._ctx.notice(pending.connector_id, "rejected", f"{pending.id_tag}: CSMS {reason}")
            return
        self._decide(pending, local, "offline_rule")

    def on_answer_timer(self, ref: str) -> None:
        pending = self._ctx.answered(ref)  # a late answer is then ignored
        if pending is not None:
            self.on_failed(pending, "timeout")

    def remember(self, id_tag: str, info: AuthorizationInfo) -> None:
        if id_tag and self._ctx.settings.bool("AuthorizationCacheEnabled"):
            self.cache.update(id_tag, info)
            self._ctx.emit(fx.CacheIdTag(id_tag, info))

    def _decide(self, pending: Pending, info: AuthorizationInfo, source: str) -> None:
        accepted = info.status is AuthStatus.ACCEPTED
        if pending.purpose != "parent_stop" or not accepted:
            self._record(pending, accepted, source, info.status.value, REASONS[info.status])
        if not accepted:
            self._ctx.notice(pending.connector_id, "rejected", f"{pending.id_tag}: {info.status}")
        elif pending.purpose == "parent_stop":
            self._stop_by_group(pending.id_tag, info.group_id)
        else:
            self._grant(pending, info.group_id)

    def _grant(self, pending: Pending, group_id: str | None) -> None:
        auth = Authorization(pending.id_tag, group_id, remote=pending.purpose == "remote",
                             remote_start_id=pending.remote_start_id)
        if pending.connector_id != 0:
            connector = self._ctx.connectors[pending.connector_id]
            if self._reservations.blocks(connector, pending.id_tag, group_id):
                self._record(pending, False, "charger", None, "reserved_for_another")
                self._ctx.notice(pending.connector_id, "rejected", "reserved for another")
                return
            auth = replace(auth, reservation_id=self._reservations.matching(
                connector, pending.id_tag, group_id))
        if pending.connector_id == 0:
            self._floating = auth
            timeout = float(self._ctx.settings.int("ConnectionTimeOut"))
            self._ctx.emit(fx.StartTimer("connection:0", timeout))
            self._ctx.notice(0, "accepted", pending.id_tag)
            return
        connector = self._ctx.connectors[pending.connector_id]
        if not connector.free or connector.phase not in (Phase.IDLE, Phase.PLUGGED):
            self._record(pending, False, "charger", None, "connector_not_free")
            self._ctx.notice(pending.connector_id, "rejected", "connector no longer free")
            return
        self.admit(connector, auth)

    def _stop_by_group(self, id_tag: str, group_id: str | None) -> None:
        """TC_069: a different token of the same group may stop the transaction."""
        for connector in self._ctx.connectors.values():
            tx = connector.transaction
            if tx is None or tx.stopping is not None or not tx.group_id or not group_id:
                continue
            if tx.group_id.lower() == group_id.lower():
                self._transactions.stop(connector, StopReason.LOCAL, id_tag)
                return
        self._ctx.notice(0, "rejected", f"{id_tag}: no transaction of its group")

    # --- the accepted token and the plug ---------------------------------------------------

    def admit(self, connector: Connector, auth: Authorization,
              trigger: TxTrigger = TxTrigger.AUTHORIZED) -> None:
        """An accepted token for ``connector``: the transaction begins if the EV is plugged
        in, else the token waits ConnectionTimeOut seconds for the plug."""
        self._ctx.notice(connector.connector_id, "accepted", auth.id_tag)
        if connector.phase is Phase.PLUGGED:
            connector.lifecycle.fire("authorize")
            self._transactions.begin(connector, auth, trigger)
            return
        connector.lifecycle.fire("authorize")
        connector.authorization = auth
        timeout = float(self._ctx.settings.int("ConnectionTimeOut"))
        self._ctx.emit(fx.StartTimer(f"connection:{connector.connector_id}", timeout))

    def claim(self, connector: Connector) -> Authorization | None:
        """A token presented before this plug-in, or the free-vend tag, if any applies."""
        ctx = self._ctx
        if not (connector.in_service and not connector.faulted and not ctx.shutting_down):
            return None
        auth = self._floating
        if auth is None and ctx.config.free_vend_id_tag is not None:
            auth = Authorization(ctx.config.free_vend_id_tag)
        if auth is None or self._reservations.blocks(connector, auth.id_tag, auth.group_id):
            return None  # a floating token waits for a connector not reserved for another
        if auth is self._floating:
            self._floating = None
            ctx.emit(fx.CancelTimer("connection:0"))
        return replace(auth, reservation_id=self._reservations.matching(
            connector, auth.id_tag, auth.group_id))

    def on_connection_timer(self, arg: str) -> None:
        """ConnectionTimeOut: the token waited for a plug-in in vain."""
        if int(arg) == 0:
            self._floating = None
            return
        self._release(self._ctx.connectors[int(arg)])

    def _release(self, connector: Connector) -> None:
        """The token waiting on ``connector`` for the plug is dropped: back to idle."""
        if connector.lifecycle.fire("expire"):
            connector.authorization = None
            self._availability.apply_pending(connector)

    # --- commands: the cache and the local list --------------------------------------------

    def clear_cache(self, request: msg.CsmsClearCache) -> msg.StatusResult:
        self.cache.clear()
        self._ctx.emit(fx.CacheIdTag(None, None))
        return msg.StatusResult("Accepted")

    def local_list_version(self, request: msg.CsmsGetLocalListVersion,
                           ) -> msg.LocalListVersionResult:
        enabled = self._ctx.settings.bool("LocalAuthListEnabled")
        return msg.LocalListVersionResult(self.local_list.version if enabled else -1)

    def send_local_list(self, request: msg.CsmsSendLocalList) -> msg.StatusResult:
        """TC_043: Full replaces, Differential needs a newer version (else VersionMismatch);
        too many entries is Failed."""
        if len(request.entries) > SEND_LOCAL_LIST_MAX:
            return msg.StatusResult("Failed")
        if not request.full and request.version <= self.local_list.version:
            return msg.StatusResult("VersionMismatch")
        candidate = LocalList(self.local_list.version, self.local_list.entries())
        if request.full:
            candidate.replace(request.version, request.entries)
        else:
            candidate.apply(request.version, request.entries)
        if len(candidate) > LOCAL_LIST_MAX:
            return msg.StatusResult("Failed")
        self._local_list_saved, self.local_list = self.local_list, candidate
        self._ctx.emit(fx.SaveLocalList(candidate.version, tuple(candidate.entries())))
        return msg.StatusResult("Accepted")

    def on_list_not_saved(self, event: object) -> None:
        """The store refused the new list: the one saved before stays."""
        self.local_list = self._local_list_saved
