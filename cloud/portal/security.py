"""Security headers and caching of every portal response."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from fleetlink.cloud.app_keys import SETTINGS

PREFIX = "/portal"
STATIC_PREFIX = "/portal/static/"


def content_security_policy(tile_url: str | None) -> str:
    """Return the pages' CSP: our own scripts, styles and images only (no ``unsafe-inline``),
    plus the map tiles' origin when ``tile_url`` is set."""
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url.replace("{", "").replace("}", ""))
        images = f"{images} {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


async def portal_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set the security headers on responses under ``/portal``; authenticated pages and their
    JSON twins are ``no-store``, static files revalidate."""
    if not request.path.startswith(PREFIX):
        return
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(
        request.app[SETTINGS].portal_tile_url
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.path.startswith(STATIC_PREFIX):
        headers["Cache-Control"] = "no-cache"
    else:
        headers["Cache-Control"] = "no-store"
        headers["Vary"] = "Cookie"
