"""A login waiting for its one-time code lives in PostgreSQL: the process that took the password
step need not be the one that takes the code (``cloud serve --processes N``, replicas)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.digests import digest
from fleetlink.cloud.portal.pending_logins import PendingLogin, PendingLogins
from fleetlink.cloud.registry import create_tenant

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _member(pool: asyncpg.Pool) -> tuple[str, uuid.UUID]:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await create_tenant(pool, tenant)
    async with pool.acquire() as conn:
        user = await add_user(conn, tenant, f"totp-{uuid.uuid4().hex[:6]}@x.example", "admin")
    return tenant, user


async def test_a_pending_login_started_by_one_process_is_finished_by_another(
    pool: asyncpg.Pool,
) -> None:
    tenant, user = await _member(pool)
    first, second = PendingLogins(), PendingLogins()  # two processes' instances
    async with pool.acquire() as conn:
        pending_id = await first.start(conn, tenant, user)
        assert await second.get(conn, pending_id) == PendingLogin(tenant, user)
        # Only a digest of the browser's id is stored.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM portal_pending_logins WHERE id_hash = $1", digest(pending_id)
            )
            == 1
        )
        assert not await conn.fetchval(
            "SELECT count(*) FROM portal_pending_logins WHERE id_hash = $1", pending_id.encode()
        )
        await second.finish(conn, pending_id)
        assert await first.get(conn, pending_id) is None


async def test_wrong_codes_count_across_processes_and_the_third_ends_the_login(
    pool: asyncpg.Pool,
) -> None:
    tenant, user = await _member(pool)
    first, second = PendingLogins(), PendingLogins()
    async with pool.acquire() as conn:
        pending_id = await first.start(conn, tenant, user)
        assert await first.failed(conn, pending_id) is True
        assert await second.failed(conn, pending_id) is True
        assert await first.failed(conn, pending_id) is False
        assert await second.get(conn, pending_id) is None
        assert await second.failed(conn, "not-a-pending-login") is False


async def test_an_expired_pending_login_is_unknown_and_dropped_by_the_next_start(
    pool: asyncpg.Pool,
) -> None:
    tenant, user = await _member(pool)
    expired = PendingLogins(ttl=timedelta(seconds=-1))
    async with pool.acquire() as conn:
        old = await expired.start(conn, tenant, user)
        assert await expired.get(conn, old) is None
        await PendingLogins().start(conn, tenant, user)
        assert not await conn.fetchval(
            "SELECT count(*) FROM portal_pending_logins WHERE id_hash = $1", digest(old)
        )
