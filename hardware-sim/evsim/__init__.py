"""evsim: hardware emulators, an EV model, a local CSMS and the bench control API for evse-agent.

Everything here speaks the real wire protocols (Modbus RTU/TCP, RDM6300 frames on a
pseudo-terminal, gpiozero pins) so the agent's real drivers run against it unchanged.
Nothing here imports ``agent``.
"""
