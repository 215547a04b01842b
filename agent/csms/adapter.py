"""The seam between the version-free link and one OCPP version's translation.

:class:`agent.csms.link.Link` connects, reconnects and carries calls without knowing which
OCPP version it speaks; an :class:`Adapter` (``agent.csms.v16.ADAPTER``,
``agent.csms.v201.ADAPTER``) names the WebSocket subprotocol and opens a :class:`Session` on
an open connection, which turns the core's neutral messages (:mod:`agent.core.messages`) into
that version's calls and the CSMS's calls into neutral commands. The adapters never import
each other; what they share lives here (import contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from ocpp.routing import on as _on

from agent.core import messages as msg
from agent.csms import validation

validation.install()  # the library's schema checks, cheaper (agent/csms/validation.py)

CommandHandler = Callable[[msg.AnyCsmsRequest],
                          msg.AnyCsmsResponse | Awaitable[msg.AnyCsmsResponse]]
"""Answers a CSMS command at once; only an UnlockConnector that drives a lock answers with an
awaitable (it must not await a call to the CSMS: the receive loop waits for it)."""

Refused = Callable[[str, str | None], None]
"""Told of each frame from the CSMS that is not a valid OCPP message and was answered with a
CALLERROR: ``(error code, the call's action if it has one)``."""

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class Session(Protocol):
    """One OCPP session over an open WebSocket."""

    async def start(self) -> None:
        """Receive and answer the CSMS's calls until the connection closes."""

    async def send(self, req: msg.OutboundReq, ref: str,
                   transaction_id: int | None = None) -> msg.InboundConf:
        """Make one call and return the neutral answer. ``transaction_id`` is the CSMS's id
        of the transaction (versions where the CSMS makes it). Raises
        :class:`agent.csms.errors.CallRejected` for a CALLERROR, TimeoutError when the CSMS
        stays silent."""


class Adapter(Protocol):
    """One OCPP version."""

    @property
    def subprotocol(self) -> str:
        """The WebSocket subprotocol, e.g. ``ocpp1.6``."""

    @property
    def uses_csms_transaction_ids(self) -> bool:
        """True where the CSMS makes the transaction ids (1.6): the outbox then holds a
        transaction's updates and end until its start is confirmed, and hands them the id."""

    def open(self, charge_point_id: str, connection: Any, commands: CommandHandler,
             response_timeout: float, replied: Callable[[], None],
             refused: Refused | None = None) -> Session:
        """A session on ``connection``; ``replied`` is called after each answer to the CSMS
        has been sent (TriggerMessage: the reply goes before the message), ``refused`` for
        each invalid frame the session answered with a CALLERROR."""


def on(action: str) -> Callable[[_Handler], _Handler]:
    """``ocpp.routing.on`` with a type (the library is untyped)."""
    return cast(Callable[[_Handler], _Handler], _on(action))


def timestamp(moment: datetime) -> str:
    """OCPP timestamps: UTC with an explicit Z, millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
