"""MQTT: the charger's state, events and commands on a broker, with Home Assistant discovery.

:mod:`agent.mqtt.client` wraps the MQTT library (aiomqtt); :mod:`agent.mqtt.topics` and
:mod:`agent.mqtt.discovery` are pure (what to publish, from the status snapshot and the
session records); :mod:`agent.mqtt.service` runs it on the event loop. Off unless ``[mqtt]``
is configured; the broker being down never touches charging (docs/home-assistant.md).
"""
