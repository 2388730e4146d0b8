"""What the portal's browser tests ask the API and the database beside the page: REST calls
with an API token, the page's CSRF token, rows and audit entries."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import Page

from tests.cloud.portal.conftest import PortalServer


def api_call(
    server: PortalServer,
    token: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Call the REST API with a bearer token (``body`` as JSON); return the status and the
    JSON answer, a refusal's included."""
    request = urllib.request.Request(
        f"{server.base_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def api_json(
    server: PortalServer,
    token: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Call the REST API as ``api_call`` does and return the JSON answer of a success; raise
    AssertionError with the answer if the API refused."""
    status, answer = api_call(server, token, method, path, body, headers)
    assert status < 400, f"{method} {path}: {status} {answer}"
    return answer


def csrf_token(page: Page) -> str:
    """Return the CSRF token of the page shown (every portal page carries it in its logout
    form)."""
    value: str = page.eval_on_selector(
        "form[action='/portal/logout'] input[name=csrf_token]", "el => el.value"
    )
    return value


def fetch_row(server: PortalServer, sql: str, *args: Any) -> Any:
    """Return the first row ``sql`` selects, read on the server's pool."""
    return server.call(lambda: server.pool.fetchrow(sql, *args))


def audit_count(
    server: PortalServer, tenant: str, action: str, resource: str, resource_id: str | None = None
) -> int:
    """Return how many audit entries of ``tenant`` record ``action`` on ``resource`` (that one
    when ``resource_id`` is given)."""
    row = fetch_row(
        server,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = $2 "
        "AND resource = $3 AND ($4::text IS NULL OR resource_id = $4)",
        tenant,
        action,
        resource,
        resource_id,
    )
    return int(row[0])
