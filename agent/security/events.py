"""Security event types of the OCPP 1.6 security extension (SecurityEventNotification).

The names are the 1.6 edition's (``InvalidCentralSystemCertificate``, not 2.0.1's
``InvalidCsmsCertificate``). The extension marks some as critical (they must reach the
CSMS); this agent sends every event it raises and keeps each in the local security log.
"""

from __future__ import annotations

FIRMWARE_UPDATED = "FirmwareUpdated"  # critical
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCentralSystem"
CSMS_FAILED_TO_AUTHENTICATE = "CentralSystemFailedToAuthenticate"
SETTING_SYSTEM_TIME = "SettingSystemTime"  # critical
STARTUP = "StartupOfTheDevice"  # critical
RESET_OR_REBOOT = "ResetOrReboot"  # critical
SECURITY_LOG_CLEARED = "SecurityLogWasCleared"  # critical
RECONFIGURATION = "ReconfigurationOfSecurityParameters"
MEMORY_EXHAUSTION = "MemoryExhaustion"  # critical
INVALID_MESSAGES = "InvalidMessages"
REPLAY_ATTACK = "AttemptedReplayAttacks"
TAMPER = "TamperDetectionActivated"  # critical
INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
INVALID_CSMS_CERTIFICATE = "InvalidCentralSystemCertificate"
INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
INVALID_TLS_VERSION = "InvalidTLSVersion"
INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"

CRITICAL = frozenset({FIRMWARE_UPDATED, SETTING_SYSTEM_TIME, STARTUP, RESET_OR_REBOOT,
                      SECURITY_LOG_CLEARED, MEMORY_EXHAUSTION, TAMPER})
