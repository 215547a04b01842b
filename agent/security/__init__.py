"""OCPP security: profiles, certificates, security events."""
