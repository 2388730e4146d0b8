"""The webhook signature: HMAC-SHA256 over the timestamp and the exact body bytes.

A receiver verifies a delivery like this (docs/guides/fleet-manager.md shows it in full):

1. read ``Fleetlink-Timestamp`` (Unix seconds) and ``Fleetlink-Signature`` (``v1=<hex>``);
2. refuse it when the timestamp is more than 5 minutes from the receiver's clock (replays);
3. compute ``HMAC-SHA256(secret, f"{timestamp}." + raw body)`` in hex and compare it with the
   ``v1`` value in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TIMESTAMP_HEADER = "Fleetlink-Timestamp"
SIGNATURE_HEADER = "Fleetlink-Signature"
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """Return a new random signing secret (shown to the user once, stored encrypted)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``Fleetlink-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Return whether a received delivery is authentic and fresh."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(
        hmac.compare_digest(expected, candidate.strip())
        for candidate in signature_header.split(",")
    )
