"""Outgoing webhooks: session events and start notifications, from a durable outbox.

Each one is written to the store's ``webhooks`` table in the same step that stores the
session record, then POSTed to ``api.webhook_url`` as JSON, oldest first, one at a time: so
they arrive in order (per session too), at least once, and survive restarts and kill -9.
A receiver that fails (no connection, a timeout, a status other than 2xx) gets the same
webhook again after a back-off (1 s doubling to 5 min); nothing else waits for it, so
charging is never affected.

Bodies:

* session events: ``{"type": "session", "event": "SESSION_STARTED", "sequence": 1,
  "session": {...}}`` (SESSION_STARTED, SESSION_FAILED, SESSION_STOPPED, SESSION_COMPLETE;
  ``sequence`` counts the session's events from 1);
* the start notification exactly as ``../shared/reference/sessions-api.md`` §3 defines it:
  ``{"type": "start", "accepted", "chargebox", "id", "connector", "transaction_id" (0 when
  not accepted), "mode"}``; an answer ``{"amount": "..."}`` is stored on the session.

aiohttp's client (``ClientSession``, ``ClientTimeout``) as its "Client Quickstart" shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp

from agent import clock
from agent.sessions import Saved, Session
from agent.store import Store, StoreError

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0
POST_TIMEOUT = 10.0


def start_notification(session: Session, accepted: bool, chargebox: str) -> dict[str, Any]:
    return {"type": "start", "accepted": accepted, "chargebox": chargebox,
            "id": session.id_tag, "connector": session.connector_id,
            "transaction_id": (session.transaction_id or 0) if accepted else 0,
            "mode": session.mode.value, "session_id": session.id}


class Webhooks:
    def __init__(self, store: Store, url: str, chargebox: str,
                 view: Callable[[Session, datetime], dict[str, Any]],
                 on_amount: Callable[[str, str], None]) -> None:
        self.store = store
        self.url = url
        self.chargebox = chargebox
        self.view = view
        self.on_amount = on_amount
        self._wake = asyncio.Event()

    def enqueue(self, saved: Saved) -> None:
        """Called in the step that stored ``saved``: journal what it is due to send."""
        session = saved.session
        if saved.event is not None:
            body = {"type": "session", "event": saved.event, "sequence": session.seq,
                    "session": self.view(session, clock.now().utc)}
            self.store.webhook_put(session.id, json.dumps(body))
        if saved.start is not None:
            body = start_notification(session, saved.start, self.chargebox)
            self.store.webhook_put(session.id, json.dumps(body))
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                row = self.store.webhook_oldest()
            except StoreError as error:
                log.error("webhooks: %s", error)
                row = None
            if row is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            seq, session_id, body, attempts, not_before = row
            wait = not_before - clock.now().utc.timestamp()
            if wait > 0:
                await asyncio.sleep(wait)
            answer = await self._post(body)
            if answer is None:
                delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempts)
                self.store.webhook_retry(seq, attempts + 1,
                                         clock.now().utc.timestamp() + delay)
                continue
            self.store.webhook_done(seq)
            amount = answer.get("amount") if isinstance(answer, dict) else None
            if session_id and isinstance(amount, str) and '"type": "start"' in body:
                self.on_amount(session_id, amount)

    async def _post(self, body: str) -> Any:
        """The receiver's JSON answer ({} when none), or None when it failed."""
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                    self.url, data=body,
                    headers={"Content-Type": "application/json"}) as response:
                if not 200 <= response.status < 300:
                    log.warning("webhooks: %s answered %s; retrying later", self.url,
                                response.status)
                    return None
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("webhooks: cannot reach %s: %s; retrying later", self.url,
                        error or type(error).__name__)
            return None
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return {}
