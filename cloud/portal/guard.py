"""The portal's access check: the session cookie, the role's permission, CSRF on forms.

Pages answer a caller without a (live) session with a redirect to the login page, and a role
without the page's permission with the HTML error page (403); JSON twins answer both with the
API's problem documents. A form (POST) must carry the session's token in its ``csrf_token``
field; the session cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from fleetlink.cloud.api.access import PRINCIPAL, authenticate
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.app_keys import LIMITER
from fleetlink.cloud.auth.digests import same
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.portal.render import LOGIN_PATH, render_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSRF_FIELD = "csrf_token"


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    """Return the redirect to the login page that comes back to this page afterwards."""
    target = request.rel_url.path_qs if request.method == "GET" else "/portal/"
    return web.HTTPSeeOther(f"{LOGIN_PATH}?{urlencode({'next': target})}")


def portal_guard(handler: Handler, permission: Permission, *, json: bool = False) -> Handler:
    """Return ``handler`` behind authentication, the rate limit, the permission check and, for
    POST, the form's CSRF token; ``json`` answers refusals as problem documents."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            principal = await authenticate(request)
        except ProblemError:
            if json:
                raise
            raise login_redirect(request) from None
        wait_s = request.app[LIMITER].take(principal.limit_key)
        if wait_s:
            raise ProblemError(
                429,
                "too many requests for this user",
                headers={"Retry-After": RateLimiter.retry_after(wait_s)},
            )
        request[PRINCIPAL] = principal
        safe = request.method in ("GET", "HEAD")
        if not safe and principal.via == "session":
            form = await request.post()
            sent = form.get(CSRF_FIELD)
            if not isinstance(sent, str) or not principal.csrf_token:
                return _refuse(request, json, 403, "the form is missing its CSRF token")
            if not same(sent, principal.csrf_token):
                return _refuse(request, json, 403, "the form's CSRF token is not this session's")
        if not principal.can(permission, safe=safe):
            detail = f"the role {principal.role.value} may not do this: {permission.value}"
            return _refuse(request, json, 403, detail)
        return await handler(request)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


def _refuse(request: web.Request, json: bool, status: int, detail: str) -> web.StreamResponse:
    if json:
        raise ProblemError(status, detail)
    return render_error(request, status, detail)
