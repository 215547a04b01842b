"""evse-agent: the charge controller agent for Raspberry Pi based EV chargers."""

__version__ = "0.1.0"
