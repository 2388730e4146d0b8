"""Logins waiting for their one-time code: the password step passed, the TOTP step not yet.

They live in PostgreSQL (``portal_pending_logins``), so the code step may reach any API
process (``fleetlink cloud serve --processes N`` or replicas behind a load balancer): D103.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from fleetlink.cloud.auth.digests import digest, new_secret

PENDING_TTL = timedelta(minutes=5)
MAX_CODE_TRIES = 3


@dataclass(frozen=True, slots=True)
class PendingLogin:
    tenant_id: str
    user_id: uuid.UUID


class PendingLogins:
    """Holds each pending login under a random id (the browser keeps it in a cookie; only its
    digest is stored) for ``ttl``; a pending login allows ``max_tries`` codes, then the
    password step starts over."""

    def __init__(self, ttl: timedelta = PENDING_TTL, max_tries: int = MAX_CODE_TRIES) -> None:
        self._ttl = ttl
        self._max_tries = max_tries

    async def start(self, conn: asyncpg.Connection, tenant_id: str, user_id: uuid.UUID) -> str:
        """Return the id of a new pending login of ``user_id`` in ``tenant_id`` (expired ones
        are dropped on the way)."""
        await conn.execute("DELETE FROM portal_pending_logins WHERE expires_at <= now()")
        pending_id = new_secret()
        await conn.execute(
            "INSERT INTO portal_pending_logins (id_hash, tenant_id, user_id, expires_at) "
            "VALUES ($1, $2, $3, now() + $4::interval)",
            digest(pending_id),
            tenant_id,
            user_id,
            self._ttl,
        )
        return pending_id

    async def get(self, conn: asyncpg.Connection, pending_id: str) -> PendingLogin | None:
        """Return the pending login ``pending_id``, or None if unknown, expired or used up."""
        row = await conn.fetchrow(
            "SELECT tenant_id, user_id FROM portal_pending_logins "
            "WHERE id_hash = $1 AND expires_at > now()",
            digest(pending_id),
        )
        return None if row is None else PendingLogin(row["tenant_id"], row["user_id"])

    async def failed(self, conn: asyncpg.Connection, pending_id: str) -> bool:
        """Count a wrong code; return whether the pending login may take another one (when it
        may not, it is gone)."""
        tries = await conn.fetchval(
            "UPDATE portal_pending_logins SET tries = tries + 1 "
            "WHERE id_hash = $1 AND expires_at > now() RETURNING tries",
            digest(pending_id),
        )
        if tries is not None and tries < self._max_tries:
            return True
        await self.finish(conn, pending_id)
        return False

    async def finish(self, conn: asyncpg.Connection, pending_id: str) -> None:
        """Forget ``pending_id`` (its code was right, or it may take no more)."""
        await conn.execute(
            "DELETE FROM portal_pending_logins WHERE id_hash = $1", digest(pending_id)
        )
