"""API tokens for integrations and tools: ``Authorization: Bearer flt_<id>_<secret>``.

Only the secret's digest is stored; a token is scoped (``read``, ``write``), may expire, and
can be revoked. The token text is shown once, when it is created.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from fleetlink.cloud.auth.digests import digest, new_secret, same
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.auth.principal import Principal

PREFIX = "flt_"
SCOPES = ("read", "write")
# last_used_at is written at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """Raised for a token request that cannot be granted (bad scope, past expiry)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: uuid.UUID
    name: str
    email: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def _parse(token: str) -> tuple[uuid.UUID, str] | None:
    if not token.startswith(PREFIX):
        return None
    token_id, _, secret = token[len(PREFIX) :].partition("_")
    try:
        return uuid.UUID(hex=token_id), secret
    except ValueError:
        return None


async def create_token(
    db: asyncpg.Pool | asyncpg.Connection,
    tenant_id: str,
    user_id: uuid.UUID,
    *,
    name: str = "",
    scopes: tuple[str, ...] = SCOPES,
    expires_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """Create a token for a member; return its id and its text (shown once)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise TokenError(f"scopes must be some of {', '.join(SCOPES)}, not {sorted(unknown)}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise TokenError("the expiry needs a time zone")
    token_id, secret = uuid.uuid4(), new_secret()
    await db.execute(
        "INSERT INTO api_tokens (id, tenant_id, user_id, name, secret_hash, scopes, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        token_id,
        tenant_id,
        user_id,
        name,
        digest(secret),
        sorted(set(scopes)),
        expires_at,
    )
    return token_id, f"{PREFIX}{token_id.hex}_{secret}"


async def token_principal(db: asyncpg.Pool | asyncpg.Connection, token: str) -> Principal | None:
    """Return who holds ``token``, or None if it is malformed, unknown, expired or revoked."""
    parsed = _parse(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = await db.fetchrow(
        "SELECT t.tenant_id, t.user_id, t.secret_hash, t.scopes, t.last_used_at, u.email, m.role "
        "FROM api_tokens t JOIN users u ON u.id = t.user_id AND NOT u.disabled "
        "JOIN memberships m ON m.user_id = t.user_id AND m.tenant_id = t.tenant_id "
        "WHERE t.id = $1 AND t.revoked_at IS NULL "
        "AND (t.expires_at IS NULL OR t.expires_at > now())",
        token_id,
    )
    if row is None or not same(row["secret_hash"].hex(), digest(secret).hex()):
        return None
    last_used = row["last_used_at"]
    if last_used is None or datetime.now(UTC) - last_used > LAST_USED_RESOLUTION:
        await db.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", token_id)
    return Principal(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        email=row["email"],
        role=Role(row["role"]),
        via="token",
        token_id=token_id,
        scopes=frozenset(row["scopes"]),
    )


async def revoke_token(
    db: asyncpg.Pool | asyncpg.Connection, tenant_id: str, token_id: uuid.UUID
) -> bool:
    """Revoke a token of ``tenant_id``; return False if there is no such live token."""
    status = await db.execute(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
        token_id,
        tenant_id,
    )
    return status.endswith(" 1")


async def list_tokens(
    db: asyncpg.Pool | asyncpg.Connection, tenant_id: str, user_id: uuid.UUID | None = None
) -> list[TokenInfo]:
    """Return the tenant's tokens (only ``user_id``'s when given), newest first."""
    rows = await db.fetch(
        "SELECT t.id, t.name, u.email, t.scopes, t.created_at, t.expires_at, t.revoked_at, "
        "t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.tenant_id = $1 AND ($2::uuid IS NULL OR t.user_id = $2) "
        "ORDER BY t.created_at DESC",
        tenant_id,
        user_id,
    )
    return [TokenInfo(**dict(r)) for r in rows]
