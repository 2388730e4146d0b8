"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's second recommendation)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _HASHER.hash("no such user, same cost")


class WeakPasswordError(ValueError):
    """Raised for a password that is too short or too plain to be accepted."""


def check_strength(password: str) -> str:
    """Return ``password`` if it is acceptable; raise WeakPasswordError saying why not."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(set(password)) < 5:
        raise WeakPasswordError("a password needs at least 5 different characters")
    return password


def hash_password(password: str) -> str:
    """Return the argon2id hash of an acceptable ``password`` (raises WeakPasswordError)."""
    return _HASHER.hash(check_strength(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return whether ``password`` matches ``stored_hash`` (None: no password set)."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
