"""Field-level encryption of personal data (drivers' licence numbers and phones): AES-256-GCM.

The key ring comes from ``FLEETLINK_FIELD_KEYS`` as ``id:base64key,id:base64key``; the first
key encrypts, every key decrypts, so a new key is added in front and the old one kept until
``fleetlink cloud keys rotate`` has re-encrypted every field. A token names its key and is bound
to its place (the context, e.g. ``drivers.phone:<tenant>:<driver id>``) as associated data, so
a ciphertext copied to another row, column or tenant does not decrypt.

Token format: ``v1.<key id>.<nonce, base64url>.<ciphertext and tag, base64url>``.
Error messages never contain key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class FieldCryptoError(ValueError):
    """Raised for a bad key ring, or a token that does not decrypt in its context."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key_ring_entry(key_id: str) -> str:
    """Return ``key_id:<new random 256-bit key, base64>`` to put in front of the key ring."""
    if not _KEY_ID.match(key_id):
        raise FieldCryptoError("a key id is 1-32 letters, digits, _ or -")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


@dataclass(frozen=True)
class FieldCipher:
    """Encrypts with the active (first) key; decrypts with any key of the ring."""

    active: str
    keys: dict[str, AESGCM]

    @classmethod
    def from_env_value(cls, text: str) -> FieldCipher:
        """Return the cipher of a key ring ``id:base64key,…``; raise FieldCryptoError if bad."""
        keys: dict[str, AESGCM] = {}
        entries = [e.strip() for e in text.split(",") if e.strip()]
        if not entries:
            raise FieldCryptoError("the key ring is empty: give at least one id:base64key")
        for position, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise FieldCryptoError(f"key ring entry {position}: expected id:base64key")
            if key_id in keys:
                raise FieldCryptoError(f"key ring entry {position}: key id {key_id!r} twice")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise FieldCryptoError(f"key {key_id!r} is not base64") from None
            if len(raw) != 32:
                raise FieldCryptoError(f"key {key_id!r} has {len(raw)} bytes; AES-256 needs 32")
            keys[key_id] = AESGCM(raw)
        return cls(entries[0].partition(":")[0], keys)

    def encrypt(self, plaintext: str, context: str) -> str:
        """Return the token of ``plaintext`` bound to ``context``."""
        nonce = os.urandom(12)
        sealed = self.keys[self.active].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}.{self.active}.{_b64(nonce)}.{_b64(sealed)}"

    def decrypt(self, token: str, context: str) -> str:
        """Return the plaintext of ``token``; raise FieldCryptoError if it does not decrypt."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise FieldCryptoError(f"not a {VERSION} field token")
        _, key_id, nonce, sealed = parts
        key = self.keys.get(key_id)
        if key is None:
            raise FieldCryptoError(
                f"the token was encrypted with key {key_id!r}, which is not in the key ring"
            )
        try:
            return key.decrypt(_unb64(nonce), _unb64(sealed), context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise FieldCryptoError("the token does not decrypt here (tampered or moved)") from None

    def needs_rotation(self, token: str) -> bool:
        """Return whether ``token`` was encrypted with another key than the active one."""
        parts = token.split(".")
        return len(parts) != 4 or parts[1] != self.active
