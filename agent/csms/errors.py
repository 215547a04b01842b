"""Errors of the link to the CSMS, shared by every OCPP version.

::

    LinkError (ConnectionError)
     +-- LinkLost            the link went down while a call was in flight
    CallRejected (Exception) the CSMS answered a call with a CALLERROR
"""

from __future__ import annotations


class LinkError(ConnectionError):
    """Root of the link's errors."""


class LinkLost(LinkError):
    """The link went down (or was not up) while a call was to be made."""


class CallRejected(Exception):
    """The CSMS answered with a CALLERROR; ``code`` names it."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
