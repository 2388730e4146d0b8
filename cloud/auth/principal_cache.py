"""A short-lived cache of who holds an API token, so a busy integration costs no extra query
per request. A revoked token stops working at once on the replica that revoked it and within
``ttl_s`` on the others."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from fleetlink.cloud.auth.digests import digest
from fleetlink.cloud.auth.principal import Principal


@dataclass
class PrincipalCache:
    ttl_s: float = 5.0
    max_entries: int = 10_000
    _entries: dict[bytes, tuple[float, Principal]] = field(default_factory=dict)

    def get(self, token: str) -> Principal | None:
        """Return the cached holder of ``token`` if looked up less than ``ttl_s`` ago."""
        entry = self._entries.get(digest(token))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest(token)] = (time.monotonic() + self.ttl_s, principal)

    def forget_token(self, token_id: uuid.UUID) -> None:
        """Drop every entry of the token ``token_id`` (after it is revoked)."""
        self._entries = {k: v for k, v in self._entries.items() if v[1].token_id != token_id}

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drop every entry of ``user_id``'s tokens (after their role changed or they left)."""
        self._entries = {k: v for k, v in self._entries.items() if v[1].user_id != user_id}
