"""The authenticated caller of one request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fleetlink.cloud.auth.permissions import Permission, Role, allowed


@dataclass(frozen=True, slots=True)
class Principal:
    """A user acting in one tenant, through a browser session or an API token."""

    tenant_id: str
    user_id: uuid.UUID
    email: str
    role: Role
    via: str  # "session" or "token"
    token_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None  # None for sessions: the role alone decides
    csrf_token: str | None = None

    def can(self, permission: Permission, safe: bool = True) -> bool:
        """Return whether this caller may use ``permission`` (in an unsafe request: safe=False)."""
        return allowed(self.role, self.scopes, permission, safe)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        via = f"token {self.token_id}" if self.token_id else "session"
        return f"{self.email} ({via})"

    @property
    def limit_key(self) -> str:
        """The rate limiter's key: one bucket per token, or per user's sessions."""
        return f"token:{self.token_id}" if self.token_id else f"user:{self.user_id}"
