"""Logins lock after repeated failures; tokens are hashed, scoped, expire and revoke; and
row-level security shows the API's database role nothing without a tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.auth.accounts import (
    MAX_FAILED_LOGINS,
    AccountError,
    LoginRefused,
    SecondFactorNeeded,
    add_user,
    login,
)
from fleetlink.cloud.auth.api_tokens import create_token, revoke_token, token_principal
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.registry import create_tenant, create_vehicle

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "a long enough password"


async def _tenant(pool: asyncpg.Pool) -> str:
    return await create_tenant(pool, f"t-{uuid.uuid4().hex[:10]}")


async def test_a_member_logs_in_and_five_wrong_passwords_lock_the_account(pool) -> None:
    tenant = await _tenant(pool)
    email = f"ann-{uuid.uuid4().hex[:6]}@example.org"
    async with pool.acquire() as conn:
        await add_user(conn, tenant, email.upper(), Role.FLEET_MANAGER, PASSWORD, "Ann")
        member = await login(conn, tenant, email, PASSWORD)
        assert member.role is Role.FLEET_MANAGER and member.email == email
        for _ in range(MAX_FAILED_LOGINS - 1):
            with pytest.raises(LoginRefused) as refused:
                await login(conn, tenant, email, "wrong password!!")
            assert refused.value.locked_until is None
        with pytest.raises(LoginRefused) as refused:
            await login(conn, tenant, email, "wrong password!!")
        assert refused.value.locked_until is not None
        with pytest.raises(LoginRefused):
            await login(conn, tenant, email, PASSWORD)  # locked, even with the right password


async def test_a_totp_user_is_asked_for_the_code_only_after_the_right_password(pool) -> None:
    tenant = await _tenant(pool)
    email = f"bo-{uuid.uuid4().hex[:6]}@example.org"
    async with pool.acquire() as conn:
        user_id = await add_user(conn, tenant, email, Role.VIEWER, PASSWORD)
        await conn.execute(
            "UPDATE users SET totp_enabled = true, totp_secret_enc = 'x' WHERE id = $1", user_id
        )
        with pytest.raises(SecondFactorNeeded) as needed:
            await login(conn, tenant, email, PASSWORD)
        assert needed.value.user_id == user_id
        with pytest.raises(LoginRefused) as refused:
            await login(conn, tenant, email, "wrong password!!")
        assert not isinstance(refused.value, SecondFactorNeeded)
        with pytest.raises(LoginRefused) as refused:
            await login(conn, tenant, email, PASSWORD, second_factor=lambda _u, _s: False)
        assert not isinstance(refused.value, SecondFactorNeeded)


async def test_a_login_in_a_tenant_the_user_is_not_a_member_of_is_refused(pool) -> None:
    tenant, other = await _tenant(pool), await _tenant(pool)
    email = f"bob-{uuid.uuid4().hex[:6]}@example.org"
    async with pool.acquire() as conn:
        await add_user(conn, tenant, email, Role.VIEWER, PASSWORD)
        with pytest.raises(LoginRefused):
            await login(conn, other, email, PASSWORD)
        with pytest.raises(AccountError, match="already a member"):
            await add_user(conn, tenant, email, Role.ADMIN)
        with pytest.raises(AccountError, match="role 'boss'"):
            await add_user(conn, tenant, "c@example.org", "boss")


async def test_a_token_is_stored_hashed_and_stops_working_when_revoked_or_expired(pool) -> None:
    tenant = await _tenant(pool)
    async with pool.acquire() as conn:
        user = await add_user(conn, tenant, f"d-{uuid.uuid4().hex[:6]}@example.org", Role.ADMIN)
        token_id, token = await create_token(conn, tenant, user, scopes=("read",))
        stored = await conn.fetchval("SELECT secret_hash FROM api_tokens WHERE id = $1", token_id)
        assert token.split("_")[-1].encode() not in stored
        principal = await token_principal(conn, token)
        assert principal is not None and principal.scopes == {"read"}
        assert await token_principal(conn, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert await token_principal(conn, "flt_nonsense") is None
        assert await revoke_token(conn, tenant, token_id)
        assert await token_principal(conn, token) is None
        past = datetime.now(UTC) - timedelta(seconds=1)
        _, expired = await create_token(conn, tenant, user, expires_at=past)
        assert await token_principal(conn, expired) is None


async def test_the_api_role_sees_no_rows_without_a_tenant_and_only_its_tenants_with_one(
    migrated_db: str, pool
) -> None:
    mine, theirs = await _tenant(pool), await _tenant(pool)
    await create_vehicle(pool, mine, "mine")
    await create_vehicle(pool, theirs, "theirs")
    api = await asyncpg.connect(migrated_db, server_settings={"role": "fleetlink_api"})
    try:
        tables = [
            "vehicles",
            "devices",
            "device_assignments",
            "samples",
            "latest_signals",
            "events",
            "fleets",
            "drivers",
            "driver_assignments",
            "saved_searches",
            "audit_log",
            "memberships",
            "api_tokens",
            "sessions",
            "tenants",
            "users",
        ]
        for table in tables:
            assert await api.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        for table in ("ingested_batches", "dead_letters", "ingest_counters", "schema_migrations"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await api.fetchval(f"SELECT count(*) FROM {table}")
        async with api.transaction():
            await api.execute("SELECT set_config('fleetlink.tenant', $1, true)", mine)
            names = {r["name"] for r in await api.fetch("SELECT name FROM vehicles")}
            assert names == {"mine"}
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with api.transaction():
                    await api.execute(
                        "INSERT INTO vehicles (id, tenant_id, name) VALUES ($1, $2, 'planted')",
                        uuid.uuid4(),
                        theirs,
                    )
            for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with api.transaction():
                        await api.execute(statement)
    finally:
        await api.close()


async def test_a_pooled_api_connection_forgets_its_tenant_when_released(
    migrated_db: str, pool
) -> None:
    tenant = await _tenant(pool)
    await create_vehicle(pool, tenant, "mine")
    api = await asyncpg.create_pool(
        migrated_db, min_size=1, max_size=1, server_settings={"role": "fleetlink_api"}
    )
    try:
        async with api.acquire() as conn:
            await conn.execute("SELECT set_config('fleetlink.tenant', $1, false)", tenant)
            assert await conn.fetchval("SELECT count(*) FROM vehicles") == 1
        async with api.acquire() as conn:  # the same connection, reset by the pool
            assert await conn.fetchval("SELECT count(*) FROM vehicles") == 0
            assert await conn.fetchval("SELECT current_user") == "fleetlink_api"
    finally:
        await api.close()
