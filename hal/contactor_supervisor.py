"""Supervision of a contactor's auxiliary contact: a weld, or a failure to close.

Pure and clock-free: :meth:`ContactorSupervisor.check` takes what the contactor was told, what
its auxiliary contact says and the time, and reports a change of verdict. A disagreement must
last ``settle`` seconds (contacts take tens of milliseconds to move) before it counts.

* commanded open, contact closed  -> ``"welded"``: the charger must not start another session
* commanded closed, contact open  -> ``"stuck_open"``
"""

from __future__ import annotations

WELDED = "welded"
STUCK_OPEN = "stuck_open"


class ContactorSupervisor:
    def __init__(self, settle: float = 0.5) -> None:
        self._settle = settle
        self._since: float | None = None
        self._suspect: str | None = None
        self.verdict: str | None = None

    @property
    def suspect(self) -> str | None:
        """The disagreement seen at the last check, settled or not; None when they agree."""
        return self._suspect

    def check(self, commanded: bool, feedback: bool | None, now: float) -> str | bool | None:
        """Returns the new verdict (a fault name, or None when cleared) when it changes,
        else False."""
        suspect = _disagreement(commanded, feedback)
        if suspect != self._suspect:
            self._suspect, self._since = suspect, now
        settled = self._since is not None and now - self._since >= self._settle
        verdict = self._suspect if settled else self.verdict
        if suspect is None:
            verdict = None
        if verdict == self.verdict:
            return False
        self.verdict = verdict
        return verdict


def _disagreement(commanded: bool, feedback: bool | None) -> str | None:
    if feedback is None or feedback == commanded:
        return None
    return WELDED if feedback else STUCK_OPEN
