"""Random secrets and their stored digests (sessions ids, API tokens, CSRF tokens).

Secrets have 256 bits of entropy, so a plain SHA-256 digest is enough to store them: unlike
passwords they cannot be guessed from a dictionary.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret() -> str:
    """Return a new URL-safe random secret (43 characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    """Return the digest stored in place of ``secret``."""
    return hashlib.sha256(secret.encode()).digest()


def same(a: str, b: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
