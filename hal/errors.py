"""The HAL's error tree.

::

    HalError
     +-- ConfigurationError (ValueError)    a driver was given settings it cannot use
     |    +-- WrongSite                     the simulated world reached is another charger's
     +-- DeviceError (OSError)              a device did not answer or answered nonsense
          +-- MeterError                    -> OCPP PowerMeterFailure
          +-- PilotError                    -> OCPP EVCommunicationError
          +-- ReaderError                   -> OCPP ReaderFailure
          +-- ContactorError                -> OCPP PowerSwitchFailure
          +-- LockError                     -> OCPP ConnectorLockFailure
"""

from __future__ import annotations


class HalError(Exception):
    """Root of every error raised by a HAL driver."""


class ConfigurationError(HalError, ValueError):
    """A driver was constructed with settings it cannot work with."""


class WrongSite(ConfigurationError):
    """The simulator's pin bus belongs to a site other than this charger's (charger.id)."""


class DeviceError(HalError, OSError):
    """A device did not answer, or answered something that cannot be right."""


class MeterError(DeviceError):
    """The energy meter failed (timeout, Modbus exception, implausible value)."""


class PilotError(DeviceError):
    """The control pilot or EVSE board failed."""


class ReaderError(DeviceError):
    """The token reader failed or disappeared."""


class ContactorError(DeviceError):
    """The contactor's feedback disagrees with its command."""


class LockError(DeviceError):
    """The connector lock did not reach the commanded position in time."""
