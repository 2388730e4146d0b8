"""Time-based one-time passwords (RFC 6238) as an optional second login factor.

The secret is stored encrypted with the field key ring; a user turns TOTP on by confirming one
code from their authenticator app, and from then on every password login needs a code.
"""

from __future__ import annotations

import uuid

import pyotp

from fleetlink.cloud.records.field_crypto import FieldCipher, FieldCryptoError

ISSUER = "Fleetlink"


def _context(user_id: uuid.UUID) -> str:
    return f"users.totp:{user_id}"


def new_secret(cipher: FieldCipher, user_id: uuid.UUID, email: str) -> tuple[str, str, str]:
    """Return (stored secret, base32 secret, otpauth URI) of a new TOTP secret for a user."""
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    return cipher.encrypt(secret, _context(user_id)), secret, uri


def verify(cipher: FieldCipher, user_id: uuid.UUID, stored: str | None, code: str | None) -> bool:
    """Return whether ``code`` is the user's current code (one step of clock skew allowed)."""
    if not stored or not code or not code.isdigit():
        return False
    try:
        secret = cipher.decrypt(stored, _context(user_id))
    except FieldCryptoError:
        return False
    return pyotp.TOTP(secret).verify(code, valid_window=1)
