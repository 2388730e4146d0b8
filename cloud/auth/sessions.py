"""Browser sessions: a random id in an HttpOnly cookie, its digest in the database.

Each session carries a CSRF token that unsafe requests must echo in ``X-CSRF-Token``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from fleetlink.cloud.auth.digests import digest, new_secret
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.auth.principal import Principal

COOKIE = "fl_session"


async def create_session(
    db: asyncpg.Pool | asyncpg.Connection,
    tenant_id: str,
    user_id: uuid.UUID,
    lifetime: timedelta,
) -> tuple[str, str, datetime]:
    """Start a session; return its secret id (for the cookie), its CSRF token and expiry."""
    session_id, csrf = new_secret(), new_secret()
    expires = datetime.now(UTC) + lifetime
    await db.execute(
        "INSERT INTO sessions (id_hash, tenant_id, user_id, csrf_token, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        digest(session_id),
        tenant_id,
        user_id,
        csrf,
        expires,
    )
    return session_id, csrf, expires


async def session_principal(
    db: asyncpg.Pool | asyncpg.Connection, session_id: str
) -> Principal | None:
    """Return who holds the session ``session_id``, or None if it is unknown or expired."""
    row = await db.fetchrow(
        "SELECT s.tenant_id, s.user_id, s.csrf_token, u.email, m.role FROM sessions s "
        "JOIN users u ON u.id = s.user_id AND NOT u.disabled "
        "JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id "
        "WHERE s.id_hash = $1 AND s.expires_at > now()",
        digest(session_id),
    )
    if row is None:
        return None
    return Principal(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        email=row["email"],
        role=Role(row["role"]),
        via="session",
        csrf_token=row["csrf_token"],
    )


async def end_session(db: asyncpg.Pool | asyncpg.Connection, session_id: str) -> None:
    """Forget the session (logout); unknown ids are ignored."""
    await db.execute("DELETE FROM sessions WHERE id_hash = $1", digest(session_id))
