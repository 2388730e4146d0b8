"""Logging in, sessions with CSRF, API tokens through the API, lockout and rate limits."""

from __future__ import annotations

import uuid

import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.registry import create_tenant

from .conftest import bearer, ingest_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
PASSWORD = "a long enough password"


@pytest.fixture
async def account(pool):  # type: ignore[no-untyped-def]
    tenant = await create_tenant(pool, f"auth-{uuid.uuid4().hex[:8]}")
    email = f"manager-{uuid.uuid4().hex[:6]}@example.org"
    async with pool.acquire() as conn:
        await add_user(conn, tenant, email, Role.FLEET_MANAGER, PASSWORD)
    return tenant, email


@pytest.fixture
async def client(aiohttp_client, migrated_db, mqtt_broker):  # type: ignore[no-untyped-def]
    settings = ingest_settings(
        migrated_db, mqtt_broker.url, ingest_workers=0, api_rate_per_s=5, api_rate_burst=5
    )
    return await aiohttp_client(create_app(settings))


async def _login(client, tenant: str, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/auth/login", json={"tenant": tenant, "email": email, "password": password}
    )


async def test_a_login_sets_an_httponly_session_cookie_and_unsafe_requests_need_the_csrf_token(
    client, account
) -> None:
    tenant, email = account
    response = await _login(client, tenant, email)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["role"] == "fleet_manager" and "vehicles:write" in body["permissions"]
    cookie = response.headers["Set-Cookie"]
    assert "fl_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = await client.get("/api/v1/auth/me")
    assert me.status == 200 and (await me.json())["email"] == email
    refused = await client.post("/api/v1/fleets", json={"name": "North"})
    assert refused.status == 403 and "CSRF" in (await refused.json())["detail"]
    created = await client.post(
        "/api/v1/fleets", json={"name": "North"}, headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert created.status == 201
    out = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert out.status == 200
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_wrong_passwords_get_the_same_401_and_lock_the_account_after_five(
    client, account
) -> None:
    tenant, email = account
    for _ in range(5):
        response = await _login(client, tenant, email, "not the password")
        assert response.status == 401
        assert (await response.json())["detail"] in (
            "wrong tenant, e-mail, password or one-time code",
            "too many failed logins: the account is locked for a while",
        )
    assert (await _login(client, tenant, email)).status == 401
    unknown = await _login(client, tenant, "nobody@example.org")
    assert unknown.status == 401 and (await unknown.json())["detail"] == (
        "wrong tenant, e-mail, password or one-time code"
    )


async def test_a_member_creates_a_read_token_that_cannot_write_and_revokes_it(
    client, account
) -> None:
    tenant, email = account
    csrf = (await (await _login(client, tenant, email)).json())["csrf_token"]
    created = await client.post(
        "/api/v1/tokens",
        json={"name": "dashboard", "scopes": ["read"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201, await created.text()
    token = (await created.json())["token"]
    token_id = (await created.json())["id"]
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/vehicles", headers=bearer(token))).status == 200
    write = await client.post("/api/v1/fleets", json={"name": "x"}, headers=bearer(token))
    assert write.status == 403
    listed = await (await client.get("/api/v1/tokens", headers=bearer(token))).json()
    assert [t["name"] for t in listed["items"]] == ["dashboard"]
    assert "token" not in listed["items"][0]
    csrf = (await (await _login(client, tenant, email)).json())["csrf_token"]
    revoked = await client.delete(f"/api/v1/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert revoked.status == 200
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/vehicles", headers=bearer(token))).status == 401


async def test_a_token_over_its_rate_gets_429_with_retry_after(client, account, pool) -> None:
    from .conftest import member_token

    tenant, _ = account
    token = await member_token(pool, tenant, "viewer", scopes=("read",))
    statuses = [
        (await client.get("/api/v1/vehicles", headers=bearer(token))).status for _ in range(8)
    ]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    limited = await client.get("/api/v1/vehicles", headers=bearer(token))
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_unknown_fields_are_refused_so_no_tenant_or_id_can_be_assigned(
    client, account, pool
) -> None:
    from .conftest import member_token

    tenant, _ = account
    token = await member_token(pool, tenant, "admin")
    response = await client.post(
        "/api/v1/fleets", json={"name": "x", "tenant_id": "other"}, headers=bearer(token)
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["errors"][0]["field"] == "tenant_id"


@pytest.mark.parametrize("name", ["a\\u0000b", "a\\ud800b"])
async def test_text_postgresql_cannot_store_is_a_422_not_a_server_error(
    client, account, pool, name: str
) -> None:
    from .conftest import member_token

    tenant, _ = account
    token = await member_token(pool, tenant, "admin")
    response = await client.post(
        "/api/v1/fleets",
        data=f'{{"name": "{name}"}}'.encode(),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status == 422, await response.text()


async def test_with_totp_on_a_login_needs_the_current_one_time_code(client, account) -> None:
    import pyotp

    tenant, email = account
    csrf = {"X-CSRF-Token": (await (await _login(client, tenant, email)).json())["csrf_token"]}
    setup = await client.post("/api/v1/auth/totp", headers=csrf)
    assert setup.status == 200, await setup.text()
    secret = (await setup.json())["secret"]
    assert (await setup.json())["otpauth_uri"].startswith("otpauth://totp/Fleetlink:")
    wrong = await client.post("/api/v1/auth/totp/confirm", json={"code": "000000"}, headers=csrf)
    assert wrong.status == 422 or pyotp.TOTP(secret).now() == "000000"
    code = pyotp.TOTP(secret).now()
    confirmed = await client.post("/api/v1/auth/totp/confirm", json={"code": code}, headers=csrf)
    assert confirmed.status == 200 and (await confirmed.json())["enabled"] is True
    client.session.cookie_jar.clear()
    assert (await _login(client, tenant, email)).status == 401
    with_code = await client.post(
        "/api/v1/auth/login",
        json={"tenant": tenant, "email": email, "password": PASSWORD, "totp": code},
    )
    assert with_code.status == 200, await with_code.text()


async def test_a_body_over_the_limit_is_a_413_problem(
    aiohttp_client, migrated_db, mqtt_broker, account, pool
) -> None:
    from .conftest import member_token

    settings = ingest_settings(
        migrated_db, mqtt_broker.url, ingest_workers=0, api_max_body_bytes=2048
    )
    client = await aiohttp_client(create_app(settings))
    token = await member_token(pool, account[0], "admin")
    response = await client.post(
        "/api/v1/vehicles/import",
        data="plate\n" + "B-AB 1\n" * 1000,
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert response.status == 413
    assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_members_are_listed_in_pages_filtered_by_role_and_name(
    aiohttp_client, migrated_db, mqtt_broker, account, pool
) -> None:
    from .conftest import member_token

    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    tenant, _ = account
    token = await member_token(pool, tenant, "admin")
    async with pool.acquire() as conn:
        for n in range(3):
            await add_user(conn, tenant, f"viewer{n}@example.org", Role.VIEWER, name=f"Vic {n}")
    emails, cursor = [], None
    while True:
        params = {"limit": "2", "sort": "email", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get("/api/v1/users", params=params, headers=bearer(token))
        ).json()
        emails += [m["email"] for m in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert emails == sorted(emails) and len(emails) == 5
    viewers = await client.get("/api/v1/users", params={"role": "viewer"}, headers=bearer(token))
    assert [m["email"] for m in (await viewers.json())["items"]] == [
        f"viewer{n}@example.org" for n in range(3)
    ]
    named = await client.get("/api/v1/users", params={"q": "vic 1"}, headers=bearer(token))
    assert [m["email"] for m in (await named.json())["items"]] == ["viewer1@example.org"]
    wildcard = await client.get("/api/v1/users", params={"q": "%"}, headers=bearer(token))
    assert (await wildcard.json())["items"] == []


async def test_member_changes_keep_an_owner_and_end_a_removed_members_tokens(
    aiohttp_client, migrated_db, mqtt_broker, account, pool
) -> None:
    from .conftest import member_token

    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    tenant, _ = account
    owner = await member_token(pool, tenant, "owner")
    admin = await member_token(pool, tenant, "admin")
    me = await (await client.get("/api/v1/auth/me", headers=bearer(owner))).json()
    assert (
        await client.delete(f"/api/v1/users/{me['user_id']}", headers=bearer(owner))
    ).status == 409
    admin_me = await (await client.get("/api/v1/auth/me", headers=bearer(admin))).json()
    demote = await client.patch(
        f"/api/v1/users/{me['user_id']}", json={"role": "viewer"}, headers=bearer(admin)
    )
    assert demote.status == 403
    removed = await client.delete(f"/api/v1/users/{admin_me['user_id']}", headers=bearer(owner))
    assert removed.status == 200
    assert (await client.get("/api/v1/vehicles", headers=bearer(admin))).status == 401
