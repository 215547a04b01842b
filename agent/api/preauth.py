"""The optional pre-authorization hook: an HTTP endpoint asked before an API start.

For a payment terminal or a depot's billing system (``api.pre_authorization_url``). The
agent POSTs ``{"session_id", "chargebox", "evse_id", "connector_id", "id_tag"}`` and expects
within ``api.pre_authorization_timeout`` a 2xx JSON answer ``{"decision": D}`` where D is:

* ``accept``: the start goes on;
* ``billing_data_required``: 409 billing_data_required;
* ``payment_error``: 402 payment_error;
* ``pre_authorization_failed``: 402 pre_authorization_failed, with the answer's
  ``payment_intent_client_secret`` passed through when it gives one.

``details`` (a string) in the answer becomes the error's details. A hook that does not
answer in time, answers another status, or garbage, is 402 pre_authorization_failed saying
so (the reference's "provider failure": retry or change the payment method). Without a hook
none of these is ever produced.
"""

from __future__ import annotations

import json
import logging

import aiohttp

from agent.api.service import StartError
from agent.sessions import Session

log = logging.getLogger(__name__)

_REFUSALS = {
    "billing_data_required": (409, "Billing data is partially/fully missing or improperly "
                              "configured"),
    "payment_error": (402, "An outstanding payment must be settled first"),
    "pre_authorization_failed": (402, "The payment method could not be pre-authorized"),
}


class PreAuthorization:
    def __init__(self, url: str, timeout: float, chargebox: str) -> None:
        self.url = url
        self.timeout = timeout
        self.chargebox = chargebox

    async def __call__(self, session: Session) -> StartError | None:
        body = {"session_id": session.id, "chargebox": self.chargebox,
                "evse_id": session.evse_id, "connector_id": session.connector_id,
                "id_tag": session.id_tag}
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as http, http.post(
                    self.url, json=body) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("pre-authorization hook %s: %s", self.url,
                        str(error) or type(error).__name__)
            return self._failed(f"the pre-authorization hook did not answer within "
                                f"{self.timeout:g} s")
        return self._decide(status, text)

    def _decide(self, status: int, text: str) -> StartError | None:
        if not 200 <= status < 300:
            return self._failed(f"the pre-authorization hook answered HTTP {status}")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        decision = answer.get("decision") if isinstance(answer, dict) else None
        if decision == "accept":
            return None
        if not isinstance(answer, dict) or decision not in _REFUSALS:
            allowed = ", ".join(("accept", *_REFUSALS))
            return self._failed("the pre-authorization hook answered something else than "
                                f'{{"decision": ...}} with one of {allowed}')
        code, details = _REFUSALS[decision]
        given = answer.get("details")
        extra: dict[str, str] = {}
        secret = answer.get("payment_intent_client_secret")
        if decision == "pre_authorization_failed" and isinstance(secret, str):
            extra["payment_intent_client_secret"] = secret
        return StartError(code, decision, given if isinstance(given, str) else details,
                          extra or None)

    @staticmethod
    def _failed(details: str) -> StartError:
        return StartError(402, "pre_authorization_failed", details)
