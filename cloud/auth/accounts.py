"""Users, their memberships of tenants, and password login with lockout.

These run on the owner's connection: a login happens before any tenant is known.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import asyncpg

from fleetlink.cloud.auth.passwords import hash_password, verify_password
from fleetlink.cloud.auth.permissions import Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


class AccountError(ValueError):
    """Raised when an account change is refused: unknown tenant, duplicate user, bad role."""


@dataclass(frozen=True, slots=True)
class Member:
    user_id: uuid.UUID
    email: str
    name: str
    role: Role


def normalize_email(email: str) -> str:
    """Return ``email`` trimmed and lower-cased; raise AccountError if it is not one."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 254:
        raise AccountError(f"{email!r} is not an e-mail address")
    return email


async def add_user(
    conn: asyncpg.Connection,
    tenant_id: str,
    email: str,
    role: Role | str,
    password: str | None = None,
    name: str = "",
) -> uuid.UUID:
    """Create the user (or find them by e-mail) and make them a member of ``tenant_id``.

    Returns the user's id. Raises AccountError for an unknown tenant, an invalid e-mail or
    role, or an existing membership; WeakPasswordError for a weak password.
    """
    email = normalize_email(email)
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role {role!r} is not one of {', '.join(Role)}") from None
    password_hash = hash_password(password) if password is not None else None
    async with conn.transaction():
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        if user_id is None:
            user_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)",
                user_id,
                email,
                name,
                password_hash,
            )
        elif password_hash is not None:
            await conn.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
            )
        try:
            await conn.execute(
                "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)",
                tenant_id,
                user_id,
                role.value,
            )
        except asyncpg.ForeignKeyViolationError:
            raise AccountError(f"tenant {tenant_id!r} does not exist") from None
        except asyncpg.UniqueViolationError:
            raise AccountError(f"{email} is already a member of {tenant_id!r}") from None
    return uuid.UUID(str(user_id))


async def member(db: Executor, tenant_id: str, email: str) -> Member | None:
    """Return the member of ``tenant_id`` with this e-mail, or None."""
    row = await db.fetchrow(
        "SELECT u.id, u.email, u.name, m.role FROM users u "
        "JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1 "
        "WHERE u.email = $2 AND NOT u.disabled",
        tenant_id,
        normalize_email(email),
    )
    return Member(row["id"], row["email"], row["name"], Role(row["role"])) if row else None


class LoginRefused(Exception):
    """Raised for a login that does not succeed; ``locked_until`` is set for a locked account."""

    def __init__(self, locked_until: datetime | None = None) -> None:
        super().__init__("wrong e-mail, password or tenant")
        self.locked_until = locked_until


class SecondFactorNeeded(LoginRefused):
    """Raised when the password is right but the user turned TOTP on and no code check was
    given: the caller asks for the one-time code of ``user_id`` in a second step."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__()
        self.user_id = user_id


async def login(
    conn: asyncpg.Connection,
    tenant_id: str,
    email: str,
    password: str,
    second_factor: Callable[[uuid.UUID, str], bool] | None = None,
) -> Member:
    """Return the member whose password (and, where they enabled it, one-time code) matches;
    raise LoginRefused otherwise.

    ``second_factor(user_id, stored_secret)`` checks the one-time code of a user with TOTP on.
    With ``second_factor=None``, a user with TOTP on whose password matches raises
    SecondFactorNeeded (the portal's two-step login) instead of LoginRefused.
    Five failed attempts lock the account for 15 minutes; every refusal takes an argon2
    verification, whether the user exists or not.
    """
    try:
        email = normalize_email(email)
    except AccountError:
        verify_password(None, password)
        raise LoginRefused() from None
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT u.id, u.email, u.name, u.password_hash, u.locked_until, u.totp_enabled, "
            "u.totp_secret_enc, m.role "
            "FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1 "
            "WHERE u.email = $2 AND NOT u.disabled FOR UPDATE OF u",
            tenant_id,
            email,
        )
        now = datetime.now(UTC)
        if row is None:
            verify_password(None, password)
            raise LoginRefused()
        if row["locked_until"] is not None and row["locked_until"] > now:
            verify_password(None, password)
            raise LoginRefused(row["locked_until"])
        if (
            second_factor is None
            and row["totp_enabled"]
            and row["role"] is not None
            and verify_password(row["password_hash"], password)
        ):
            raise SecondFactorNeeded(row["id"])
        second_ok = not row["totp_enabled"] or (
            second_factor is not None and second_factor(row["id"], row["totp_secret_enc"])
        )
        if (
            verify_password(row["password_hash"], password)
            and row["role"] is not None
            and second_ok
        ):
            await conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", row["id"]
            )
            return Member(row["id"], row["email"], row["name"], Role(row["role"]))
        failed = await conn.fetchval(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 "
            "RETURNING failed_logins",
            row["id"],
        )
        locked_until = now + LOCKOUT if failed >= MAX_FAILED_LOGINS else None
        if locked_until is not None:
            await conn.execute(
                "UPDATE users SET locked_until = $2, failed_logins = 0 WHERE id = $1",
                row["id"],
                locked_until,
            )
    # Raised after COMMIT, so the count of failures sticks.
    raise LoginRefused(locked_until)
