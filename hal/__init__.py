"""Hardware abstraction layer: one role per kind of device, real drivers per wire protocol.

The roles (:mod:`hal.roles`) are :class:`typing.Protocol` classes the agent programs against.
Each driver module implements one role over one wire protocol and never imports ``agent``.
"""
