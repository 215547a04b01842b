"""The web dashboard's static files, served beside the API (``/dashboard/``).

Plain HTML, CSS and JavaScript shipped in the package (``agent/api/dashboard/``, package data
in pyproject.toml): no build step and nothing fetched at run time. The files hold no data and
no secret, so they are served without a token; every figure on the page comes from the API
with the token the browser logs in with. They are read once, when the server is built, and
answered gzip-compressed to a browser that accepts it (aiohttp ``enable_compression``).

The Content-Security-Policy allows this origin only (no inline script or style, no other
host), so an OCPP payload or an id_tag shown on the page cannot run as script even if a bug
rendered it as HTML (MDN, "Content-Security-Policy").
"""

from __future__ import annotations

import hashlib
from importlib import resources

from aiohttp import web

FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def files() -> dict[str, bytes]:
    """The dashboard's files from the installed package."""
    folder = resources.files("agent.api") / "dashboard"
    return {name: (folder / name).read_bytes() for name in FILES}


def add_dashboard(app: web.Application) -> None:
    """``GET /dashboard/`` (the page) and its two files; ``/`` and ``/dashboard`` redirect."""
    served = files()
    tags = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            for name, body in served.items()}

    async def page(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        if name not in served:
            raise web.HTTPNotFound()
        if request.headers.get("If-None-Match") == tags[name]:
            return web.Response(status=304, headers={"ETag": tags[name]})
        response = web.Response(body=served[name], content_type=FILES[name],
                                charset="utf-8", headers={**HEADERS, "ETag": tags[name],
                                                          "Cache-Control": "no-cache"})
        response.enable_compression()
        return response

    async def to_dashboard(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard/")

    app.router.add_get("/", to_dashboard)
    app.router.add_get("/dashboard", to_dashboard)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/{name}", page)
