"""The authorization decisions of one card, for ``evse-agent log --id-tag``.

Every decision is a row of the store's ``authorizations`` table (written by
:class:`agent.api.service.SessionService`, whatever asked: a card, a remote or an API start),
so it outlives the OCPP message log's rotation. The running agent holds its database
exclusively (:mod:`agent.store`), so the command line asks it over the status socket
(:func:`agent.status_server.ask`, question ``authorizations``, answered by :func:`answer`);
when no agent runs, it reads the database itself, read-only (:meth:`Store.read_only`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.status_server import StatusError, StatusUnavailable, ask, default_socket
from agent.store import Store, StoreError

QUESTION = "authorizations"
MAX_ROWS = 5000
"""At most this many decisions per question (about 1 MB of answer)."""


class DecisionsUnavailable(Exception):
    """Neither the running agent nor the database could be asked; the message says why."""


def question(id_tag: str, since: datetime | None, until: datetime | None,
             limit: int | None) -> dict[str, Any]:
    return {"ask": QUESTION, "id_tag": id_tag,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "limit": min(limit or MAX_ROWS, MAX_ROWS)}


def answer(store: Store, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The newest decisions that match a :func:`question`, oldest first. Raises KeyError,
    ValueError or TypeError for a malformed question, StoreError for a store that fails."""
    since, until = (datetime.fromisoformat(request[key]) if request.get(key) else None
                    for key in ("since", "until"))
    return store.authorization_rows(id_tag=str(request["id_tag"]), since=since, until=until,
                                    limit=min(int(request.get("limit") or MAX_ROWS), MAX_ROWS),
                                    newest=True)


def fetch(state_dir: Path, id_tag: str, since: datetime | None = None,
          until: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The decisions about ``id_tag``: from the running agent, else from its database."""
    request = question(id_tag, since, until, limit)
    try:
        rows = ask(default_socket(state_dir), request)
    except StatusUnavailable:
        pass  # no agent runs (or it hangs): its database may be read directly
    except StatusError as error:  # denied, or an agent that cannot answer
        raise DecisionsUnavailable(str(error)) from None
    else:
        if not isinstance(rows, list):
            raise DecisionsUnavailable(f"the agent answered {type(rows).__name__}, not a list")
        return rows
    try:
        with Store.read_only(state_dir) as store:
            return answer(store, request)
    except StoreError as error:
        raise DecisionsUnavailable(str(error)) from None
