"""Passwords are argon2id hashes; rate limits refill at their rate; the permission table holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlink.cloud.auth.passwords import (
    WeakPasswordError,
    check_strength,
    hash_password,
    verify_password,
)
from fleetlink.cloud.auth.permissions import ROLE_PERMISSIONS, Permission, Role, allowed
from fleetlink.cloud.auth.rate_limit import RateLimiter


def test_a_password_hash_is_argon2id_and_verifies_only_the_same_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterz")
    assert not verify_password(None, "correct horse battery")
    assert not verify_password("not a hash", "correct horse battery")


@pytest.mark.parametrize("weak", ["short", "aaaaaaaaaaaaaaaa", "abababababababab"])
def test_short_or_plain_passwords_are_refused(weak: str) -> None:
    with pytest.raises(WeakPasswordError):
        check_strength(weak)


@given(st.text(min_size=0, max_size=40))
def test_strength_check_accepts_or_says_why_never_anything_else(password: str) -> None:
    try:
        assert check_strength(password) == password
    except WeakPasswordError as exc:
        assert "password needs" in str(exc)


def test_the_rate_limiter_allows_a_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=3)
    assert [limiter.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", now=0.0)
    assert wait == pytest.approx(0.5)
    assert RateLimiter.retry_after(wait) == "1"
    assert limiter.take("k", now=0.5) == 0.0
    assert limiter.take("other", now=0.5) == 0.0


def test_owners_and_admins_may_do_everything_viewers_only_read() -> None:
    assert ROLE_PERMISSIONS[Role.OWNER] == frozenset(Permission)
    writes = {p for p in Permission if not p.value.endswith((":read",))}
    assert not (ROLE_PERMISSIONS[Role.VIEWER] & writes) - {Permission.SEARCHES_OWN}
    assert Permission.DRIVERS_PERSONAL not in ROLE_PERMISSIONS[Role.TECHNICIAN]
    assert Permission.USERS_WRITE not in ROLE_PERMISSIONS[Role.FLEET_MANAGER]


def test_a_read_token_of_an_admin_may_only_make_safe_requests() -> None:
    read = frozenset({"read"})
    assert allowed(Role.ADMIN, read, Permission.VEHICLES_READ, safe=True)
    assert allowed(Role.ADMIN, read, Permission.TOKENS_OWN, safe=True)
    assert not allowed(Role.ADMIN, read, Permission.VEHICLES_WRITE, safe=False)
    assert not allowed(Role.ADMIN, read, Permission.TOKENS_OWN, safe=False)
    assert allowed(Role.ADMIN, frozenset({"read", "write"}), Permission.VEHICLES_WRITE, safe=False)
    assert not allowed(Role.VIEWER, frozenset({"read", "write"}), Permission.VEHICLES_WRITE, False)
    assert allowed(Role.VIEWER, None, Permission.VEHICLES_READ)
