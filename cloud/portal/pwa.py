"""The portal as an installable web app: its manifest and its service worker.

The worker is served at ``/portal/sw.js`` (not under ``/static/``) so that its scope is the
whole portal; it keeps the last GET of each visited page for reading offline (see
``static/sw.js``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
MANIFEST_PATH = "/portal/manifest.webmanifest"
WORKER_PATH = "/portal/sw.js"

MANIFEST = {
    "name": "Fleetlink",
    "short_name": "Fleetlink",
    "description": "Your fleet's vehicles, drivers, maintenance and devices.",
    "id": "/portal/",
    "start_url": "/portal/",
    "scope": "/portal/",
    "display": "standalone",
    "background_color": "#ffffff",
    "theme_color": "#0b2f5e",
    "icons": [
        {
            "src": "/portal/static/icon.svg",
            "sizes": "any",
            "type": "image/svg+xml",
            "purpose": "any",
        }
    ],
}

routes = web.RouteTableDef()


@routes.get(MANIFEST_PATH)
async def manifest(request: web.Request) -> web.Response:
    """Return the web app manifest."""
    return web.json_response(MANIFEST, content_type="application/manifest+json")


@routes.get(WORKER_PATH)
async def service_worker(request: web.Request) -> web.Response:
    """Return the service worker's script."""
    return web.Response(
        text=(HERE / "static" / "sw.js").read_text(encoding="utf-8"),
        content_type="text/javascript",
    )
