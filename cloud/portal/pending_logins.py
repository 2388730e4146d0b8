"""Logins waiting for their one-time code: the password step passed, the TOTP step not yet."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fleetlink.cloud.auth.digests import new_secret

PENDING_TTL_S = 300.0
MAX_CODE_TRIES = 3


@dataclass
class PendingLogin:
    tenant_id: str
    user_id: uuid.UUID
    expires_at: float
    tries: int = 0


class PendingLogins:
    """Holds each pending login under a random id (the browser keeps it in a cookie) for
    ``ttl_s``; a pending login allows ``max_tries`` codes, then the password step starts over.

    In memory: a replica that did not see the password step sends the user back to it.
    """

    def __init__(self, ttl_s: float = PENDING_TTL_S, max_tries: int = MAX_CODE_TRIES) -> None:
        self._ttl_s = ttl_s
        self._max_tries = max_tries
        self._pending: dict[str, PendingLogin] = {}

    def start(self, tenant_id: str, user_id: uuid.UUID) -> str:
        """Return the id of a new pending login of ``user_id`` in ``tenant_id``."""
        self._expire()
        pending_id = new_secret()
        self._pending[pending_id] = PendingLogin(tenant_id, user_id, time.monotonic() + self._ttl_s)
        return pending_id

    def get(self, pending_id: str) -> PendingLogin | None:
        """Return the pending login ``pending_id``, or None if unknown, expired or used up."""
        self._expire()
        return self._pending.get(pending_id)

    def failed(self, pending_id: str) -> bool:
        """Count a wrong code; return whether the pending login may take another one."""
        pending = self._pending.get(pending_id)
        if pending is None:
            return False
        pending.tries += 1
        if pending.tries >= self._max_tries:
            del self._pending[pending_id]
            return False
        return True

    def finish(self, pending_id: str) -> None:
        """Forget ``pending_id`` (its code was right)."""
        self._pending.pop(pending_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[key]
