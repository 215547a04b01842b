"""Configuration by the CSMS: GetConfiguration, ChangeConfiguration, and what a change does.

The keys, their types, ranges and defaults are :mod:`agent.core.settings`; every change is
saved (SaveSetting) and handed to the feature that depends on the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.context import Context
from agent.core.settings import Value, render


class Configuration:
    """``reactions``: what to do when a key changes, by key."""

    def __init__(self, ctx: Context, reactions: Mapping[str, Callable[[], None]]) -> None:
        self._ctx = ctx
        self._reactions = reactions
        ctx.settings.subscribe(self._changed)

    def _changed(self, name: str, value: Value) -> None:
        self._ctx.emit(fx.SaveSetting(name, render(value)))
        reaction = self._reactions.get(name)
        if reaction is not None:
            reaction()

    def get(self, request: msg.CsmsGetConfiguration) -> msg.GetConfigurationResult:
        settings = self._ctx.settings
        entries: list[msg.ConfigurationEntry] = []
        unknown: list[str] = []
        for name in request.keys or settings.names():
            try:
                value = render(settings.get(name))
            except KeyError:
                unknown.append(name)
                continue
            entries.append(msg.ConfigurationEntry(name, value, settings.is_readonly(name)))
        return msg.GetConfigurationResult(tuple(entries), tuple(unknown))

    def change(self, request: msg.CsmsChangeConfiguration) -> msg.ChangeConfigurationResult:
        try:
            self._ctx.settings.change(request.key, request.value)
        except KeyError:
            return msg.ChangeConfigurationResult("NotSupported")
        except (PermissionError, ValueError):
            return msg.ChangeConfigurationResult("Rejected")
        return msg.ChangeConfigurationResult("Accepted")
