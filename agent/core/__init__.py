"""The charging core: sans-I/O, clock-free, deterministic.

``Station.handle(event, now) -> list[Effect]`` is the whole interface. The core never reads
the clock, never sleeps and never does I/O; the runtime feeds it events and applies its effects
strictly in order. OCPP versions translate between these neutral types and their payloads.
"""
