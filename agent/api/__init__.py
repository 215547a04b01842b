"""The local sessions API: an HTTP server (aiohttp) over :mod:`agent.api.service`."""
